"""cellblock_lab: open the kernel an assistant uses in JupyterLab (or bare jupyter_server).

Why: jupyter_server 1.23 in gateway mode (--gateway-url, what JupyterLab runs on) only knows the
kernels it started itself. GET /api/kernels filters the gateway's list down to those, GET
/api/kernels/{id} answers 404 for any other, and POST /api/sessions with {"kernel": {"id": ...}}
starts a NEW kernel when the id is not one of its own. So a person could not open the kernel an
assistant started over MCP, although cellblock lists it and serves its channels.

How: two pieces, both on jupyter_server's own public classes and its own authentication.

  - CellblockKernelManager, a GatewayMappingKernelManager that adopts the gateway's kernels
    instead of ignoring them: listing adopts every kernel cellblock lists for this token (its
    tenant's), and a request on an id it does not know yet (model, interrupt, restart, delete)
    first asks cellblock for that kernel (GatewayKernelManager.start_kernel with a kernel_id
    refreshes its model with GET /api/kernels/{id}, which is how jupyter_server adopts a kernel
    it did not start). cellblock refuses DELETE of a kernel its Jupyter API did not start; the
    refusal's reason is passed on as is.

  - GET /cellblock/open/{kernel_id} (the extension's route): adopts the kernel, makes sure a
    notebook named for it exists in the server's root (cellblock-<first 8 of the id>.ipynb,
    created empty if missing), puts a notebook session on that kernel (reusing the one on that
    path), and redirects to /lab/tree/<file> when JupyterLab is loaded; without JupyterLab (or
    with ?format=json) it answers the session's JSON model.

`cellblock lab` runs `python3 -m cellblock_lab ARGS`: main() below starts JupyterLab when it can
be imported (jupyter_server alone otherwise, or with --server-only) with this module as an
extension and as the kernel manager, ARGS passed on. docs/jupyterlab.md says how to use it.
"""
import json
import os
import re
import sys

from jupyter_server.base.handlers import APIHandler
from jupyter_server.gateway.managers import GatewayMappingKernelManager
from jupyter_server.utils import ensure_async, url_escape, url_path_join
from tornado import web

try:
    from jupyter_client.jsonutil import json_default
except ImportError:  # older jupyter_client
    from jupyter_client.jsonutil import date_default as json_default

KERNEL_ID_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")


def _gateway_reason(error):
    """The reason cellblock gave for refusing a request (its JSON "message"), when error came
    from gateway_request (which wraps tornado's HTTPClientError and drops the body)."""
    cause = getattr(error, "__cause__", None)
    body = getattr(getattr(cause, "response", None), "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
            if isinstance(message, str) and message:
                return message
        except (ValueError, AttributeError):
            pass
    return None


async def adopt_kernel(mkm, kernel_id, model=None):
    """The GatewayKernelManager of kernel_id in mkm (a GatewayMappingKernelManager), adopting
    the gateway's kernel when mkm does not know it yet: with the model the gateway listed, or
    one asked for now. 404 when the gateway does not know it (for this token)."""
    if not isinstance(kernel_id, str) or not KERNEL_ID_RE.fullmatch(kernel_id):
        raise web.HTTPError(404, f"Kernel does not exist: {str(kernel_id)[:64]}")
    if kernel_id in mkm._kernels:
        return mkm._kernels[kernel_id]
    km = mkm.kernel_manager_factory(parent=mkm, log=mkm.log)
    if model is None:
        # What GatewayMappingKernelManager.start_kernel(kernel_id=...) does, without keeping a
        # manager whose model the gateway did not give.
        await km.start_kernel(kernel_id=kernel_id)
    else:
        km.kernel_id = kernel_id
        km.kernel_url = url_path_join(mkm.kernels_url, url_escape(kernel_id))
        await km.refresh_model(model)
    if not km.kernel:
        raise web.HTTPError(404, f"Kernel does not exist: {kernel_id}")
    if kernel_id not in mkm._kernels:  # another request may have adopted it meanwhile
        mkm._kernels[kernel_id] = km
        mkm.log.info("cellblock: adopted kernel %s (started outside this server)", kernel_id)
    return mkm._kernels[kernel_id]


class CellblockKernelManager(GatewayMappingKernelManager):
    """Every kernel the gateway lists for this token is one of ours to list, describe, drive."""

    async def list_kernels(self, **kwargs):
        response = await _gateway_get(self.kernels_url)
        for model in response:
            if isinstance(model, dict) and model.get("id") not in self._kernels:
                try:
                    await adopt_kernel(self, model.get("id"), model)
                except web.HTTPError as e:  # a malformed entry: list the others
                    self.log.warning("cellblock: not adopting %r: %s", model.get("id"), e)
        return await super().list_kernels(**kwargs)

    async def kernel_model(self, kernel_id):
        known = kernel_id in self._kernels
        km = await adopt_kernel(self, kernel_id)
        if known:  # a fresh state for a kernel someone else may be driving
            if not await km.refresh_model():
                self.remove_kernel(kernel_id)
                raise web.HTTPError(404, f"Kernel does not exist: {kernel_id}")
        return km.kernel

    async def interrupt_kernel(self, kernel_id, **kwargs):
        await adopt_kernel(self, kernel_id)
        return await super().interrupt_kernel(kernel_id, **kwargs)

    async def restart_kernel(self, kernel_id, now=False, **kwargs):
        await adopt_kernel(self, kernel_id)
        return await super().restart_kernel(kernel_id, now=now, **kwargs)

    async def shutdown_kernel(self, kernel_id, now=False, restart=False):
        await adopt_kernel(self, kernel_id)
        try:
            return await super().shutdown_kernel(kernel_id, now=now, restart=restart)
        except web.HTTPError as e:
            reason = _gateway_reason(e)
            if reason is None:
                raise
            # Refused (the assistant's kernel): it stays, and so does our record of it. (No
            # format arguments: jupyter_server's APIHandler writes log_message as it is.)
            raise web.HTTPError(e.status_code, reason) from e

    async def shutdown_all(self, now=False):
        """On exit: shut down what cellblock lets us (the kernels this server started); the
        adopted ones are refused and stay with their owners."""
        for kernel_id in list(self._kernels):
            try:
                await self.shutdown_kernel(kernel_id, now=now)
            except web.HTTPError as e:
                self.log.info("cellblock: kernel %s left running: %s", kernel_id, e.log_message)
                self.remove_kernel(kernel_id)


async def _gateway_get(url):
    from jupyter_server.gateway.gateway_client import gateway_request

    response = await gateway_request(url, method="GET")
    models = json.loads(response.body)
    return models if isinstance(models, list) else []


def _notebook_name(kernel_id):
    return f"cellblock-{kernel_id[:8]}.ipynb"


class OpenKernelHandler(APIHandler):
    """GET /cellblock/open/{kernel_id}: a notebook session on that kernel, then the frontend."""

    @web.authenticated
    async def get(self, kernel_id):
        mkm = self.kernel_manager
        if not isinstance(mkm, GatewayMappingKernelManager):
            raise web.HTTPError(
                400,
                "this jupyter_server is not in gateway mode: start it with --gateway-url "
                "pointing at cellblock (`cellblock lab` does)",
            )
        km = await adopt_kernel(mkm, kernel_id)
        kernel_name = (km.kernel or {}).get("name") or "python3"
        path = _notebook_name(kernel_id)
        cm = self.contents_manager
        if not await ensure_async(cm.file_exists(path)):
            await ensure_async(cm.save(await self._new_notebook(kernel_name), path))
        sm = self.session_manager
        session = None
        for s in await ensure_async(sm.list_sessions()):
            if s.get("path") == path or s.get("notebook", {}).get("path") == path:
                session = s
        if session is None:
            session = await ensure_async(
                sm.create_session(path=path, name=path, type="notebook", kernel_id=kernel_id)
            )
        elif session.get("kernel", {}).get("id") != kernel_id:
            await ensure_async(sm.update_session(session["id"], kernel_id=kernel_id))
            session = await ensure_async(sm.get_session(session_id=session["id"]))
        self.log.info("cellblock: %s opened on kernel %s", path, kernel_id)
        lab = "jupyterlab" in getattr(self.serverapp.extension_manager, "extensions", {})
        if lab and self.get_argument("format", "") != "json":
            return self.redirect(url_path_join(self.base_url, "lab", "tree", url_escape(path)))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(session, default=json_default))

    async def _new_notebook(self, kernel_name):
        import nbformat

        kernelspec = {"name": kernel_name, "display_name": kernel_name}
        language = None
        try:
            spec = await ensure_async(self.kernel_spec_manager.get_kernel_spec(kernel_name))
            kernelspec["display_name"] = getattr(spec, "display_name", None) or kernel_name
            language = getattr(spec, "language", None)
        except Exception as e:  # the notebook still opens; the frontend asks again
            self.log.debug("cellblock: no kernelspec %s: %s", kernel_name, e)
        metadata = {"kernelspec": kernelspec}
        if language:
            kernelspec["language"] = language
            metadata["language_info"] = {"name": language}
        nb = nbformat.v4.new_notebook(metadata=metadata)
        return {"type": "notebook", "format": "json", "content": nb}


def _jupyter_server_extension_points():
    return [{"module": "cellblock_lab"}]


def _load_jupyter_server_extension(serverapp):
    base = serverapp.web_app.settings.get("base_url", "/")
    serverapp.web_app.add_handlers(
        ".*$", [(url_path_join(base, r"/cellblock/open/([^/]+)"), OpenKernelHandler)]
    )
    if not isinstance(serverapp.kernel_manager, CellblockKernelManager):
        serverapp.log.warning(
            "cellblock: the kernel manager is not cellblock_lab.CellblockKernelManager: only "
            "/cellblock/open/{id} adopts the assistant's kernels"
        )
    serverapp.log.info("cellblock: open a kernel at %scellblock/open/{kernel_id}", base)


# jupyter_server 1.x reads these names too
load_jupyter_server_extension = _load_jupyter_server_extension


def main(argv=None):
    """`cellblock lab`'s entry: JupyterLab when it can be imported, else jupyter_server, in
    gateway mode with this module loaded; argv is passed on (the gateway's URL among it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    server_only = "--server-only" in args
    args = [a for a in args if a != "--server-only"]
    ours = [
        "--ServerApp.jpserver_extensions=cellblock_lab=True",
        "--ServerApp.kernel_manager_class=cellblock_lab.CellblockKernelManager",
    ]
    app = None
    if not server_only:
        try:
            from jupyterlab.labapp import LabApp as app
        except ImportError:
            print("cellblock lab: JupyterLab is not installed here; starting jupyter_server "
                  "alone (its API, and /cellblock/open/{kernel_id})", file=sys.stderr)
    if app is None:
        from jupyter_server.serverapp import ServerApp as app
    if not os.environ.get("JUPYTER_GATEWAY_URL") and not any(
        a.startswith("--gateway-url") or a.startswith("--GatewayClient.url") for a in args
    ):
        print("cellblock lab: no gateway URL (--gateway-url or JUPYTER_GATEWAY_URL)",
              file=sys.stderr)
        return 2
    return app.launch_instance(argv=ours + args)


if __name__ == "__main__":
    sys.exit(main())
