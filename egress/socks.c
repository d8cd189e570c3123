/* socks.c: the two SOCKS5 messages a client sends before its bytes flow (RFC 1928).
 *
 * Why a file of its own: like http_head.c, a parser of attacker bytes, fuzzed alone. How: pure
 * functions over the bytes buffered so far; each says "need more", "bad (with the reply code to
 * send)" or "done, this many bytes". Only what cellblock supports is accepted: method 00 (no
 * authentication; the sandbox is the identity), command CONNECT, address types IPv4, domain,
 * IPv6. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "egress_private.h"

int egress_socks_greeting(const uint8_t *buf, size_t len, bool *noauth)
{
    *noauth = false;
    if (len < 2)
        return 0;
    if (buf[0] != 0x05 || buf[1] == 0)
        return -1;
    size_t need = 2 + (size_t)buf[1];
    if (len < need)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (buf[i] == 0x00)
            *noauth = true;
    return (int)need;
}

int egress_socks_request(const uint8_t *buf, size_t len, egress_socks_req_t *req)
{
    memset(req, 0, sizeof *req);
    if (len < 4)
        return 0;
    if (buf[0] != 0x05 || buf[2] != 0x00)
        return -SOCKS_FAILURE;
    size_t need;
    switch (buf[3]) {
    case 0x01: need = 4 + 4 + 2; break;
    case 0x04: need = 4 + 16 + 2; break;
    case 0x03:
        if (len < 5)
            return 0;
        if (buf[4] == 0)
            return -SOCKS_FAILURE;
        need = 5 + (size_t)buf[4] + 2;
        break;
    default: return buf[1] != 0x01 ? -SOCKS_BAD_COMMAND : -SOCKS_BAD_ATYP;
    }
    if (buf[1] != 0x01) /* BIND, UDP ASSOCIATE: not here */
        return -SOCKS_BAD_COMMAND;
    if (len < need)
        return 0;
    const uint8_t *addr = buf + 4;
    if (buf[3] == 0x01) {
        inet_ntop(AF_INET, addr, req->host, sizeof req->host);
        req->literal = true;
    } else if (buf[3] == 0x04) {
        inet_ntop(AF_INET6, addr, req->host, sizeof req->host);
        req->literal = true;
    } else {
        size_t n = buf[4];
        if (memchr(buf + 5, '\0', n))
            return -SOCKS_FAILURE;
        memcpy(req->host, buf + 5, n);
        req->host[n] = '\0';
    }
    req->port = (uint16_t)(buf[need - 2] << 8 | buf[need - 1]);
    if (req->port == 0)
        return -SOCKS_FAILURE;
    return (int)need;
}
