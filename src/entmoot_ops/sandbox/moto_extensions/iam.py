"""IAM as AWS enforces it (actions by their IAM prefix, denials in the client's protocol), SimulatePrincipalPolicy,
and throttling."""

from __future__ import annotations

import threading

from typing import Any

from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import AccessDeniedError, JsonRESTError
from moto.core.exceptions import _RESTError as XmlRESTError  # the query protocols' error body; moto exports no other name
from moto.iam import access_control
from moto.iam.responses import IamResponse
from moto.core.responses import ActionResult

from entmoot_ops.aws_conventions import IAM_PREFIX, action_name

_lock = threading.Lock()  # this extension's state is read and changed by moto's request threads


_original_iam_request_init = access_control.IAMRequestBase.__init__


_original_authorize = ActionAuthenticatorMixin._authenticate_and_authorize_action


_original_element_matches = access_control.IAMPolicyStatement._check_element_matches


def _iam_request_init(self: access_control.IAMRequestBase, *args: Any, **kwargs: Any) -> None:
    _original_iam_request_init(self, *args, **kwargs)
    service, _, operation = self._action.partition(":")
    self._action = action_name(service, operation)


# Throttling as AWS answers it, per IAM service prefix: how many more calls are refused with "Rate exceeded". The
# sandbox's own key is not throttled: its agent is not the account under test.
throttled: dict[str, int] = {}


unthrottled_key = ""


def _answers_json(response: Any) -> bool:
    """moto answers JSON to JSON-protocol clients, and to CloudWatch's smithy (CBOR) clients too."""
    headers = response.headers
    return "json" in (headers.get("Content-Type") or "") or bool(headers.get("X-Amz-Target") or headers.get("smithy-protocol"))


def _throttle(self: Any) -> None:
    scope = (self.headers.get("Authorization") or "").partition("Credential=")[2].split(",")[0].split("/")
    if len(scope) < 4 or scope[0] == unthrottled_key:
        return
    prefix = IAM_PREFIX.get(scope[3], scope[3])
    with _lock:
        if throttled.get(prefix, 0) <= 0:
            return
        throttled[prefix] -= 1
    if _answers_json(self):
        raise JsonRESTError("ThrottlingException", "Rate exceeded")
    raise XmlRESTError("Throttling", "Rate exceeded")


def _authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
    _throttle(self)
    try:
        _original_authorize(self, iam_request_cls, resource)
    except AccessDeniedError as exc:
        if _answers_json(self):
            raise JsonRESTError("AccessDeniedException", exc.message) from None
        raise


def _element_matches(self: access_control.IAMPolicyStatement, statement_element: Any, value: str) -> bool:
    if statement_element == "Resource" and value == "*":  # moto does not know the request's resource
        return True
    return _original_element_matches(self, statement_element, value)


def _signature_not_recomputed(self: access_control.IAMRequestBase) -> None:
    """moto recomputes SigV4 wrongly for REST requests with a query string (FIS ``ListExperimentTemplates?maxResults=
    100`` reads as SignatureDoesNotMatch). botocore signs correctly; the sandbox authorises by the key's user."""


def _simulate_principal_policy(self: IamResponse) -> Any:
    """IAM's policy simulator for a user or role of the account, on the resource ``*`` as moto authorises: each
    action allowed, or denied implicitly or explicitly."""
    kind, _, name = self._get_param("PolicySourceArn").split(":", 5)[-1].partition("/")
    holder_class = {"user": access_control.IAMUserAccessKey, "role": access_control.AssumedRoleAccessKey}[kind]
    holder = holder_class.__new__(holder_class)  # moto's own gathering of a principal's policies, without a key
    holder.account_id, holder.partition = self.current_account, "aws"
    setattr(holder, "_owner_user_name" if kind == "user" else "_owner_role_name", name.rsplit("/", 1)[-1])
    policies = [access_control.IAMPolicy(policy) for policy in holder.collect_policies()]
    results = []
    for action in self._get_param("ActionNames", []):
        decisions = {policy.is_action_permitted(action, "*") for policy in policies}
        decision = ("explicitDeny" if access_control.PermissionResult.DENIED in decisions else
                    "allowed" if access_control.PermissionResult.PERMITTED in decisions else "implicitDeny")
        results.append({"EvalActionName": action, "EvalResourceName": "*", "EvalDecision": decision})
    return ActionResult({"EvaluationResults": results, "IsTruncated": False})


def enforce_iam(enforced: bool) -> None:
    """From now on, every request is authorised against the policies of the IAM user whose key signed it."""
    moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if enforced else float("inf")
    ActionAuthenticatorMixin.request_count = 0


def install() -> None:
    access_control.IAMRequestBase.__init__ = _iam_request_init
    access_control.IAMRequestBase.check_signature = _signature_not_recomputed
    IamResponse.simulate_principal_policy = _simulate_principal_policy
    access_control.IAMPolicyStatement._check_element_matches = _element_matches
    ActionAuthenticatorMixin._authenticate_and_authorize_action = _authorize
