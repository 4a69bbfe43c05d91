from __future__ import annotations

from tests.api._handler_ctx import Api, api_fixture  # noqa: F401 - the `api` fixture

USER = "arn:aws:iam::123456789012:user/"


def test_register_tag_list_deregister(api: Api) -> None:
    api.RegisterOnPremisesInstance(instanceName="h1", iamUserArn=USER + "h1")
    api.RegisterOnPremisesInstance(
        instanceName="h2", iamSessionArn="arn:aws:sts::123456789012:assumed-role/r/h2"
    )
    api.AddTagsToOnPremisesInstances(
        instanceNames=["h1", "h2"], tags=[{"Key": "env", "Value": "prod"}]
    )
    api.AddTagsToOnPremisesInstances(instanceNames=["h1"], tags=[{"Key": "role", "Value": "web"}])
    info = api.GetOnPremisesInstance(instanceName="h1")["instanceInfo"]
    assert info["tags"] == [{"Key": "env", "Value": "prod"}, {"Key": "role", "Value": "web"}]
    assert info["instanceArn"].startswith("arn:aws:codedeploy:eu-west-1:123456789012:instance/h1_")
    web = [{"Key": "role", "Value": "web", "Type": "KEY_AND_VALUE"}]
    assert api.ListOnPremisesInstances(tagFilters=web)["instanceNames"] == ["h1"]
    api.RemoveTagsFromOnPremisesInstances(instanceNames=["h1"], tags=[{"Key": "role"}])
    assert api.ListOnPremisesInstances(tagFilters=web)["instanceNames"] == []
    api.DeregisterOnPremisesInstance(instanceName="h2")
    assert api.ListOnPremisesInstances(registrationStatus="Registered")["instanceNames"] == ["h1"]
    assert api.ListOnPremisesInstances(registrationStatus="Deregistered")["instanceNames"] == ["h2"]
    infos = api.BatchGetOnPremisesInstances(instanceNames=["h1", "h2", "zz"])["instanceInfos"]
    assert [i["instanceName"] for i in infos] == ["h1", "h2"]
    assert infos[1]["deregisterTime"] is not None


def test_registration_errors(api: Api) -> None:
    api.RegisterOnPremisesInstance(instanceName="h1", iamUserArn=USER + "h1")
    assert api.error(
        "RegisterOnPremisesInstance", instanceName="h1", iamUserArn=USER + "x"
    ).code == ("InstanceNameAlreadyRegisteredException")
    assert api.error(
        "RegisterOnPremisesInstance", instanceName="h2", iamUserArn=USER + "h1"
    ).code == ("IamUserArnAlreadyRegisteredException")
    assert (
        api.error("RegisterOnPremisesInstance", instanceName="h3").code == "IamArnRequiredException"
    )
    assert (
        api.error(
            "RegisterOnPremisesInstance",
            instanceName="h3",
            iamUserArn=USER + "h3",
            iamSessionArn="arn:aws:sts::123456789012:assumed-role/r/s",
        ).code
        == "MultipleIamArnsProvidedException"
    )
    assert api.error("GetOnPremisesInstance", instanceName="nope").code == (
        "InstanceNotRegisteredException"
    )
    assert api.error(
        "AddTagsToOnPremisesInstances", instanceNames=["nope"], tags=[{"Key": "a"}]
    ).code == ("InstanceNotRegisteredException")
    assert api.error("AddTagsToOnPremisesInstances", instanceNames=["h1"], tags=[]).code == (
        "TagRequiredException"
    )
    # A deregistered name may be registered again.
    api.DeregisterOnPremisesInstance(instanceName="h1")
    api.RegisterOnPremisesInstance(instanceName="h1", iamUserArn=USER + "h1")
