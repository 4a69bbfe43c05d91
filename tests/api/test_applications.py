from __future__ import annotations

from tests.api._handler_ctx import Api, api_fixture  # noqa: F401 - the `api` fixture

APP_ARN = "arn:aws:codedeploy:eu-west-1:123456789012:application:"


def test_create_get_list_delete(api: Api) -> None:
    app_id = api.CreateApplication(applicationName="web", tags=[{"Key": "team", "Value": "a"}])[
        "applicationId"
    ]
    info = api.GetApplication(applicationName="web")["application"]
    assert info["applicationId"] == app_id and info["computePlatform"] == "Server"
    assert info["createTime"].tzinfo is not None
    assert api.ListTagsForResource(ResourceArn=APP_ARN + "web")["Tags"] == [
        {"Key": "team", "Value": "a"}
    ]
    assert api.ListApplications()["applications"] == ["web"]
    api.DeleteApplication(applicationName="web")
    assert api.error("GetApplication", applicationName="web").code == (
        "ApplicationDoesNotExistException"
    )
    api.DeleteApplication(applicationName="web")  # deleting again is not an error


def test_name_errors(api: Api) -> None:
    api.CreateApplication(applicationName="web")
    assert api.error("CreateApplication", applicationName="web").code == (
        "ApplicationAlreadyExistsException"
    )
    assert api.error("CreateApplication", applicationName="").code == (
        "ApplicationNameRequiredException"
    )
    assert api.error("CreateApplication", applicationName="a" * 101).code == (
        "InvalidApplicationNameException"
    )
    assert api.error("CreateApplication", applicationName="bad name").code == (
        "InvalidApplicationNameException"
    )
    assert api.error("CreateApplication", applicationName="x", computePlatform="VM").code == (
        "InvalidComputePlatformException"
    )


def test_list_pages_and_batch_get(api: Api) -> None:
    for i in range(105):
        api.CreateApplication(applicationName=f"app-{i:03d}")
    first = api.ListApplications()
    assert len(first["applications"]) == 100 and first["nextToken"]
    second = api.ListApplications(nextToken=first["nextToken"])
    assert len(second["applications"]) == 5 and second.get("nextToken") is None
    assert api.error("ListApplications", nextToken="garbage").code == "InvalidNextTokenException"
    got = api.BatchGetApplications(applicationNames=["app-001", "app-002"])["applicationsInfo"]
    assert [a["applicationName"] for a in got] == ["app-001", "app-002"]
    assert api.error("BatchGetApplications", applicationNames=["x"] * 101).code == (
        "BatchLimitExceededException"
    )


def test_rename_keeps_groups_and_tags(api: Api) -> None:
    api.CreateApplication(applicationName="old", tags=[{"Key": "k", "Value": "v"}])
    api.CreateDeploymentGroup(
        applicationName="old", deploymentGroupName="g", serviceRoleArn="arn:aws:iam::1:role/r"
    )
    api.UpdateApplication(applicationName="old", newApplicationName="new")
    assert api.ListDeploymentGroups(applicationName="new")["deploymentGroups"] == ["g"]
    assert api.ListTagsForResource(ResourceArn=APP_ARN + "new")["Tags"] == [
        {"Key": "k", "Value": "v"}
    ]


def test_resource_tags(api: Api) -> None:
    api.CreateApplication(applicationName="web")
    arn = APP_ARN + "web"
    api.TagResource(ResourceArn=arn, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    api.TagResource(ResourceArn=arn, Tags=[{"Key": "a", "Value": "3"}])
    api.UntagResource(ResourceArn=arn, TagKeys=["b"])
    assert api.ListTagsForResource(ResourceArn=arn)["Tags"] == [{"Key": "a", "Value": "3"}]
    assert api.error("ListTagsForResource", ResourceArn="nope").code == "InvalidArnException"
    assert api.error("TagResource", ResourceArn=APP_ARN + "missing", Tags=[{"Key": "a"}]).code == (
        "ApplicationDoesNotExistException"
    )


def test_github_token_names(api: Api) -> None:
    assert api.ListGitHubAccountTokenNames()["tokenNameList"] == []
    api.ctx.store.github_tokens.add(
        name="me", token="t", now=__import__("datetime").datetime.now(__import__("datetime").UTC)
    )
    assert api.ListGitHubAccountTokenNames()["tokenNameList"] == ["me"]
    assert api.DeleteGitHubAccountToken(tokenName="me") == {"tokenName": "me"}
    assert api.error("DeleteGitHubAccountToken", tokenName="me").code == (
        "GitHubAccountTokenDoesNotExistException"
    )
