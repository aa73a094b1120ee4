"""The operator runs kopf again when kopf exits because a watched kind vanished.

kopf exits when a watch reconnects to a kind whose CRD was deleted before kopf's own CRD watch
stopped it (a 404). On a real API server that is a race its timing decides, which a test cannot
bring about at will: so kopf's run is a function here that raises kopf's own error, as kopf does."""

import pytest
from kopf._cogs.clients.errors import APIForbiddenError, APINotFoundError

from agentnet_operator.main import run_until_stopped


def kopf_run(outcomes: list[BaseException | None]):
    runs = []

    def serve_once() -> None:
        runs.append(1)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    return serve_once, runs


def test_a_vanished_kind_runs_kopf_again_until_it_stops_by_itself():
    gone = APINotFoundError({"message": "the server could not find the requested resource", "code": 404},
                            status=404, headers={})
    serve_once, runs = kopf_run([gone, gone, None])
    run_until_stopped(serve_once, pause=0)
    assert len(runs) == 3


@pytest.mark.parametrize("error", [APIForbiddenError({"message": "forbidden", "code": 403}, status=403, headers={}),
                                   RuntimeError("a bug")], ids=["forbidden", "bug"])
def test_any_other_error_stops_the_operator(error):
    serve_once, runs = kopf_run([error, None])
    with pytest.raises(type(error)):
        run_until_stopped(serve_once, pause=0)
    assert len(runs) == 1
