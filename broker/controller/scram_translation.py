"""AlterUserScramCredentials (key 51) between the wire and the controller
(``kraft/controller/scram_control.py``)."""

from __future__ import annotations

from typing import Any

from broker.protocol.errors import ErrorCode
from broker.protocol.messages import alter_user_scram_credentials
from kraft.controller.scram_control import AlterScramReply, AlterScramRequest

__all__ = ["alter_scram_request", "alter_scram_response", "alter_scram_timed_out"]


def alter_scram_request(request: Any, version: int) -> AlterScramRequest:
    return AlterScramRequest(
        tuple((d.name, d.mechanism) for d in request.deletions),
        tuple((u.name, u.mechanism, u.iterations, bytes(u.salt), bytes(u.salted_password))
              for u in request.upsertions))


def _every_user(request: Any, code: int) -> Any:
    R = alter_user_scram_credentials.RESPONSE
    users = dict.fromkeys(x.name for x in (*request.deletions, *request.upsertions))
    return R.cls(results=[R.AlterUserScramCredentialsResult(user=u, error_code=code)
                          for u in users])


def alter_scram_timed_out(request: Any) -> Any:
    """A broker's answer when no controller took the forwarded request in time."""
    return _every_user(request, ErrorCode.REQUEST_TIMED_OUT)


def alter_scram_response(request: Any, reply: AlterScramReply | None, version: int) -> Any:
    R = alter_user_scram_credentials.RESPONSE
    if reply is None:  # not the active controller
        return _every_user(request, ErrorCode.NOT_CONTROLLER)
    return R.cls(results=[R.AlterUserScramCredentialsResult(
        user=u, error_code=code, error_message=message) for u, code, message in reply.results])
