"""Accounts kept apart, as AWS keeps them, for the tests' emulator.

AWS knows a request's account from its credentials; moto from the header `x-moto-account-id`.
A test signs as an account by putting `acct` and the account ID among the dot-separated parts
of its access key ID (`deckhand.deploy.7.acct111111111111`, `admin.acct111111111111`); this layer
turns that into moto's header, and into the account IAM's evaluation resolves `AWS::AccountId`
to (`iam.CURRENT_ACCOUNT`). A key without it is the default account, as before.

ECR across accounts: a request naming another account's registry (`registryId`) is served from
that account's repository when the repository's policy allows the caller's account the action,
as ECR does; otherwise it is refused as ECR refuses it. moto would look for the repository in the
caller's own account and answer RepositoryNotFound, which deckhand would read as "no such image".
"""

import io
import json
import re

import iam

CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/")
ACCOUNT_IN_KEY = re.compile(r"(?:^|\.)acct(\d{12})(?:\.|$)")


def account_of(access_key):
    found = ACCOUNT_IN_KEY.search(access_key)
    return found.group(1) if found else None


def principal_of(access_key, account):
    """The role a test signs as (`deckhand.ROLE.STACK...`), else the account's root."""
    parts = access_key.split(".")
    if parts[0] == "deckhand" and len(parts) > 1:
        return f"arn:{iam.PARTITION}:iam::{account}:role/{iam.ROLES.get(parts[1], parts[1])}Role"
    return f"arn:{iam.PARTITION}:iam::{account}:root"


def repository_policy_allows(policy_text, account, principal, action, resource):
    """Whether a repository policy lets `principal` of `account` perform `action`: a statement
    naming the account (its ID or root), the principal itself or anyone, and no deny."""
    if not policy_text:
        return False
    statements = json.loads(policy_text).get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    names = {account, f"arn:{iam.PARTITION}:iam::{account}:root", principal}

    def names_caller(statement):
        aws = statement.get("Principal", {})
        if aws == "*":
            return True
        aws = iam.as_list(aws.get("AWS", [])) if isinstance(aws, dict) else []
        return "*" in aws or bool(names & set(aws))

    # A repository policy names no Resource: the repository is its resource.
    mine = [dict(s, Resource=s.get("Resource", resource)) for s in statements if names_caller(s)]
    return iam.decide(mine, action, resource, {}) == "allow"


class Accounts:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        found = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        account = account_of(found.group(1)) if found else None
        if account is None:
            return self.app(environ, start_response)
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = account
        token = iam.CURRENT_ACCOUNT.set(account)
        try:
            if found.group(2) == "ecr":
                refused = self.across(environ, found.group(1), account)
                if refused is not None:
                    return self.refuse(refused, start_response)
            return list(self.app(environ, start_response))
        finally:
            iam.CURRENT_ACCOUNT.reset(token)

    @staticmethod
    def across(environ, access_key, account):
        """Serves an ECR request for another account's registry from it, when its repository
        policy allows; returns the refusal otherwise."""
        from moto.ecr.models import ecr_backends

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        params = json.loads(body) if body.strip() else {}
        registry = params.get("registryId")
        if not registry or registry == account:
            return None
        operation = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
        name = params.get("repositoryName", "")
        region = iam.REGION
        resource = f"arn:{iam.PARTITION}:ecr:{region}:{registry}:repository/{name}"
        repository = ecr_backends[registry][region].repositories.get(name)
        policy = repository.policy if repository is not None else None
        principal = principal_of(access_key, account)
        if not repository_policy_allows(policy, account, principal, f"ecr:{operation}", resource):
            return (f"User: {principal} is not authorized to perform: ecr:{operation} on resource: {resource} "
                    f"because no resource-based policy allows the ecr:{operation} action")
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = registry
        return None

    @staticmethod
    def refuse(message, start_response):
        body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
        start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.1"),
                                           ("Content-Length", str(len(body)))])
        return [body]
