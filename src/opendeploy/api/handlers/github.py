"""ListGitHubAccountTokenNames and DeleteGitHubAccountToken."""

from __future__ import annotations

from typing import Any

from opendeploy.api.context import Handler, RequestContext
from opendeploy.api.handlers import _common as c
from opendeploy.service_errors import (
    GitHubAccountTokenDoesNotExistError,
    GitHubAccountTokenNameRequiredError,
)

PAGE_SIZE = c.PAGE_SIZE


def list_github_account_token_names(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    after = c.decode_token(params.get("nextToken"))
    names = ctx.store.github_tokens.list_names()
    chunk, more = c.page_after(names, after, PAGE_SIZE)
    return {"tokenNameList": chunk, "nextToken": c.page(chunk, more)}


def delete_github_account_token(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = params.get("tokenName")
    if not name:
        raise GitHubAccountTokenNameRequiredError("The GitHub token name was not specified.")
    if not ctx.store.github_tokens.delete(name):
        raise GitHubAccountTokenDoesNotExistError(
            f"No GitHub account connection exists named {name}."
        )
    return {"tokenName": name}


HANDLERS: dict[str, Handler] = {
    "ListGitHubAccountTokenNames": list_github_account_token_names,
    "DeleteGitHubAccountToken": delete_github_account_token,
}
