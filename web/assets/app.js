/* app.js: the page at `/` (docs/page.md). No framework, no build step.
 *
 * Logs in by POSTing the token once to /ui/api/login (the server answers with an HttpOnly
 * login cookie; the token is then forgotten), lists the sandboxes the login may reach every
 * 2 s while the tab is visible, shows one sandbox (#/sandbox/ID) with its kernels, log and
 * history, and streams its kernels' output through the Jupyter API's channels WebSocket.
 *
 * Everything a sandbox produces (output, names, logs) is the attacker's: it goes into the
 * page through textContent only, never innerHTML, and links are built only from the server's
 * own lab URL. */
'use strict';

(function () {
  const REFRESH_MS = 2000;
  const MAX_OUTPUT_NODES = 4000; /* older output is dropped first */

  let me = null;
  let timer = null;
  let shownSandbox = null;
  const sockets = new Map(); /* kernel id -> WebSocket */

  const $ = (id) => document.getElementById(id);

  function node(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function status(text) { $('status').textContent = text || ''; }

  /* A request to the API: with the token only for the login, then the cookie alone. */
  async function api(method, path, token) {
    const headers = {};
    if (token) headers.Authorization = 'Bearer ' + token;
    let r;
    try {
      r = await fetch('/ui/api' + path,
                      { method, headers, credentials: 'same-origin', cache: 'no-store' });
    } catch (e) {
      return { status: 0, body: null };
    }
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    return { status: r.status, body };
  }

  function show(section) {
    for (const id of ['login', 'list', 'detail']) $(id).hidden = id !== section;
  }

  /* ---- login ------------------------------------------------------------------------------ */

  function loggedOut(message) {
    me = null;
    closeSockets(null);
    stopRefresh();
    /* Nothing of the last login stays in the page for the next one. */
    shownSandbox = null;
    $('sandboxes').tBodies[0].replaceChildren();
    $('count').textContent = '';
    for (const id of ['d-id', 'd-facts', 'd-kernels', 'd-output', 'd-logs', 'd-history', 'd-lab']) {
      $(id).replaceChildren();
    }
    $('who').textContent = '';
    $('logout').hidden = true;
    $('login-error').textContent = message || '';
    show('login');
  }

  function loggedIn(who) {
    me = who;
    $('who').textContent = who.tenant + (who.admin ? ' (admin)' : '');
    $('logout').hidden = false;
    $('login-error').textContent = '';
    route();
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = $('token').value;
    $('token').value = '';
    const r = await api('POST', '/login', token);
    if (r.status !== 200 || !r.body) {
      loggedOut(r.status === 401 ? 'That token was refused.' : 'Could not log in.');
      return;
    }
    loggedIn(r.body);
  });

  $('logout').addEventListener('click', async () => {
    await fetch('/ui/api/logout', { method: 'POST', credentials: 'same-origin' });
    loggedOut('');
  });

  /* ---- views ------------------------------------------------------------------------------ */

  function route() {
    if (!me) return;
    const m = /^#\/sandbox\/([^/]+)$/.exec(location.hash);
    if (m) {
      const id = decodeURIComponent(m[1]);
      if (id !== shownSandbox) {
        closeSockets(null);
        $('d-output').textContent = '';
        shownSandbox = id;
      }
      show('detail');
    } else {
      shownSandbox = null;
      closeSockets(null);
      show('list');
    }
    refresh();
  }

  window.addEventListener('hashchange', route);

  function stopRefresh() {
    if (timer) clearTimeout(timer);
    timer = null;
  }

  async function refresh() {
    stopRefresh();
    if (!me) return;
    if (document.visibilityState === 'visible') {
      const r = shownSandbox ? await api('GET', '/sandboxes/' + encodeURIComponent(shownSandbox))
                             : await api('GET', '/sandboxes');
      if (r.status === 401) { loggedOut('Your login has ended; log in again.'); return; }
      if (shownSandbox) renderDetail(r); else renderList(r);
    }
    if (me) timer = setTimeout(refresh, REFRESH_MS);
  }

  document.addEventListener('visibilitychange', () => { if (me) refresh(); });

  function fmtBytes(n) {
    if (typeof n !== 'number') return '';
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + ' ' + units[i];
  }

  function fmtExpires(ms) {
    if (typeof ms !== 'number') return 'never';
    const s = Math.round((ms - Date.now()) / 1000);
    if (s <= 0) return 'now';
    return s >= 60 ? Math.floor(s / 60) + ' min ' + (s % 60) + ' s' : s + ' s';
  }

  function fmtLimits(l) {
    if (!l || typeof l !== 'object') return '';
    const parts = [];
    if (l.memory_mb) parts.push(l.memory_mb + ' MB');
    if (l.cpu) parts.push(l.cpu + ' CPU');
    if (l.pids) parts.push(l.pids + ' pids');
    if (l.disk_mb) parts.push(l.disk_mb + ' MB disk');
    return parts.join(', ');
  }

  function renderList(r) {
    if (r.status !== 200 || !r.body || !Array.isArray(r.body.sandboxes)) {
      status('Could not list the sandboxes (' + r.status + ').');
      return;
    }
    status('');
    const list = r.body.sandboxes;
    const tbody = $('sandboxes').tBodies[0];
    tbody.replaceChildren();
    for (const sb of list) {
      const tr = node('tr');
      tr.dataset.sandbox = sb.id;
      const a = node('a', sb.id);
      a.href = '#/sandbox/' + encodeURIComponent(sb.id);
      const td = node('td');
      td.append(a);
      tr.append(td);
      const usage = sb.usage || {};
      const kernels = Array.isArray(sb.kernels) ? sb.kernels : [];
      const busy = kernels.some((k) => k.busy);
      tr.append(node('td', sb.tenant || ''), node('td', sb.template || ''),
                node('td', kernels.length + (busy ? ' (busy)' : ''), busy ? 'busy' : ''),
                node('td', fmtBytes(usage.memory_bytes)),
                node('td', typeof usage.cpu_share === 'number' ? usage.cpu_share.toFixed(2) : ''),
                node('td', fmtLimits(sb.limits)), node('td', fmtExpires(sb.expires_ms)));
      tbody.append(tr);
    }
    $('count').textContent = '(' + list.length + (r.body.truncated ? '+' : '') + ')';
    $('empty').hidden = list.length > 0;
  }

  function renderDetail(r) {
    $('d-id').textContent = shownSandbox;
    const found = r.status === 200 && r.body && typeof r.body === 'object';
    $('d-missing').hidden = found;
    $('d-body').hidden = !found;
    if (!found) {
      $('d-missing').textContent = r.status === 404 ? 'Not found.' : 'Could not load it (' + r.status + ').';
      closeSockets(null);
      return;
    }
    status('');
    const sb = r.body;
    const usage = sb.usage || {};
    const facts = [['Tenant', sb.tenant || ''], ['Template', sb.template || ''],
                   ['Created', sb.created_ms ? new Date(sb.created_ms).toISOString() : ''],
                   ['Expires', fmtExpires(sb.expires_ms)], ['Limits', fmtLimits(sb.limits)],
                   ['Memory', fmtBytes(usage.memory_bytes) + ' (peak ' + fmtBytes(usage.memory_peak_bytes) + ')'],
                   ['CPU', typeof usage.cpu_share === 'number' ? usage.cpu_share.toFixed(2) + ' cores' : ''],
                   ['Processes', usage.pids], ['Workspace', fmtBytes(usage.workspace_bytes)],
                   ['Executions', sb.executions], ['Commands', sb.commands]];
    const dl = $('d-facts');
    dl.replaceChildren();
    for (const [k, v] of facts) dl.append(node('dt', k), node('dd', v === undefined ? '' : v));

    const kernels = Array.isArray(sb.kernels) ? sb.kernels : [];
    const ul = $('d-kernels');
    ul.replaceChildren();
    const lab = me && typeof me.lab_url === 'string' && /^https?:\/\//.test(me.lab_url) ? me.lab_url : null;
    for (const k of kernels) {
      const li = node('li');
      li.dataset.kernel = k.id;
      li.append(node('code', k.id), ' ' + k.name + ' · ',
                node('span', k.busy ? 'busy' : k.state, k.busy ? 'busy state' : 'state'));
      for (const action of ['interrupt', 'restart']) {
        const b = node('button', action === 'interrupt' ? 'Interrupt' : 'Restart', action);
        b.type = 'button';
        b.addEventListener('click', () => kernelAction(k.id, action));
        li.append(b);
      }
      if (lab) {
        const a = node('a', 'Open in JupyterLab', 'lab');
        a.href = lab + '/cellblock/open/' + encodeURIComponent(k.id);
        a.target = '_blank';
        a.rel = 'noopener noreferrer';
        li.append(' ', a);
      }
      ul.append(li);
      watch(k.id);
    }
    closeSockets(new Set(kernels.map((k) => k.id)));
    $('d-lab').textContent = lab ? '' :
      'To open a kernel in JupyterLab: CELLBLOCK_TOKEN=TOKEN cellblock lab --url ' +
      location.origin + ', then its link /cellblock/open/KERNEL_ID (docs/jupyterlab.md; ' +
      'serve --lab-url URL puts the links here).';

    const logs = Array.isArray(sb.logs) ? sb.logs : [];
    $('d-logs').textContent = logs.map((e) => (e.time || '') + ' [' + (e.source || '') + '] ' +
                                              (e.text || '')).join('\n');
    const history = Array.isArray(sb.history) ? sb.history : [];
    $('d-history').textContent = history.map((e) => JSON.stringify(e)).join('\n');
  }

  async function kernelAction(id, action) {
    const r = await api('POST', '/kernels/' + encodeURIComponent(id) + '/' + action);
    status(r.status === 200 ? '' : action + ' failed: ' + ((r.body && r.body.message) || r.status));
    refresh();
  }

  /* ---- live output ------------------------------------------------------------------------ */

  function append(text, cls) {
    const out = $('d-output');
    const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    out.append(node('span', text, cls));
    while (out.childNodes.length > MAX_OUTPUT_NODES) out.firstChild.remove();
    if (atEnd) out.scrollTop = out.scrollHeight;
  }

  const ANSI = /\u001b\[[0-9;]*[A-Za-z]/g;

  function onMessage(ev) {
    if (typeof ev.data !== 'string') return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (!msg || msg.channel !== 'iopub' || !msg.header || !msg.content) return;
    const c = msg.content;
    switch (msg.header.msg_type) {
    case 'execute_input':
      append('In [' + (c.execution_count || ' ') + ']: ' + String(c.code || '') + '\n', 'in');
      break;
    case 'stream':
      append(String(c.text || ''), c.name === 'stderr' ? 'err' : 'out');
      break;
    case 'execute_result':
    case 'display_data': {
      const d = c.data || {};
      append((typeof d['text/plain'] === 'string' ? d['text/plain'] : '[' + Object.keys(d).join(', ') + ']') + '\n', 'out');
      break;
    }
    case 'error': {
      const tb = Array.isArray(c.traceback) ? c.traceback.join('\n').replace(ANSI, '') : '';
      append((tb || (c.ename + ': ' + c.evalue)) + '\n', 'err');
      break;
    }
    case 'status':
      $('d-live').textContent = c.execution_state === 'busy' ? '(running)' : '';
      break;
    default:
      break;
    }
  }

  function watch(kernelId) {
    if (sockets.has(kernelId)) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = proto + '//' + location.host + '/api/kernels/' + encodeURIComponent(kernelId) + '/channels';
    const ws = new WebSocket(url);
    ws.addEventListener('message', onMessage);
    ws.addEventListener('open', () => { document.body.dataset.watching = kernelId; });
    ws.addEventListener('close', () => {
      if (sockets.get(kernelId) !== ws) return; /* closed by us */
      sockets.delete(kernelId); /* the next refresh opens it again if the kernel is still there */
      $('d-live').textContent = '(output connection closed; reconnecting)';
    });
    sockets.set(kernelId, ws);
  }

  /* Close every socket, or those of kernels not in keep. */
  function closeSockets(keep) {
    for (const [id, ws] of sockets) {
      if (keep && keep.has(id)) continue;
      sockets.delete(id);
      ws.close();
    }
    if (!keep) delete document.body.dataset.watching;
  }

  /* ---- start ------------------------------------------------------------------------------ */

  (async function start() {
    const r = await api('GET', '/me');
    if (r.status === 200 && r.body) loggedIn(r.body); else loggedOut('');
  })();
})();
