"""Logging in and out (PUT /auth/_login, /auth/_login_token, /auth/_logout): the OIDC flow, where
the token is kept (pachtray.tokens), and the pachctl config the extension expects back."""

from __future__ import annotations

import logging

from pachtray import config, tokens
from pachtray.daemon.connection import Connection
from pachtray.errors import ApiError
from pachtray.pfs import errors
from pachtray.pfs.auth import AUTH_OFF
from pachtray.pfs.client import Address, connect

log = logging.getLogger(__name__)

LOGIN_TIMEOUT = 300.0  # Authenticate(oidc_state) waits until the user finished in the browser


class Login:
    def __init__(self, connection: Connection, settings: config.Settings):
        self.connection, self.settings = connection, settings

    def start(self) -> dict:
        client = self.connection.client()
        if self.connection.auth_state() == AUTH_OFF:
            raise ApiError(500, "auth isn't activated on the cluster")
        try:
            resp = client.auth.get_oidc_login()
        except errors.RPC_ERRORS:
            raise ApiError(500, "no authentication providers configured") from None
        return {"auth_url": resp.login_url, "oidc_state": resp.state}

    def finish(self, oidc_state: str) -> dict:
        """Wait for the browser login to finish, keep the token, answer the pachctl config with it."""
        self.connection.client()
        address, certs, cas = self.connection.details()
        login_client = connect(address, root_certs=certs, rpc_timeout=LOGIN_TIMEOUT)
        try:
            token = login_client.auth.authenticate(oidc_state=oidc_state).pach_token
        except errors.RPC_ERRORS as e:
            raise ApiError(500, f"login failed: {errors.details(e)}") from None
        finally:
            login_client.close()
        tokens.remember(token)
        where = tokens.save(address.url, token, self.settings.token_storage)
        log.info("logged in to %s; token kept in %s", address.url, where)
        self.connection.token_problem = ""
        self.connection.reconnect(token)
        return config_with_token(address, cas, token)

    def logout(self) -> None:
        """Forget the token (the caller unmounted everything first) and go on without one."""
        address = self.connection.address
        tokens.forget(address.url)
        self.connection.reconnect(None)
        log.info("logged out of %s", address.url)


def config_with_token(address: Address, server_cas: str, token: str) -> dict:
    """The pachctl config as the extension expects it back: active context = this cluster, with the token."""
    cfg = config.read_pachctl_config()
    contexts = cfg["v2"]["contexts"]
    name = cfg["v2"].get("active_context") or ""
    if not (isinstance(contexts.get(name), dict) and tokens.same_address(contexts[name].get("pachd_address"), address)):
        name = config.MOUNT_SERVER_CONTEXT
        contexts[name] = {"pachd_address": address.url, **({"server_cas": server_cas} if server_cas else {})}
    contexts[name]["session_token"] = token
    cfg["v2"]["active_context"] = name
    return cfg
