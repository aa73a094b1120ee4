"""The one logging setup of every process (logs.py): JSON lines or text on stdout, LOG_LEVEL and LOG_FORMAT."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentnet_runtime import logs

AGENTNET = str(Path(sys.executable).with_name("agentnet"))
CONTEXT = {"network": "demo", "component": "crdt-service"}


def record(message: str = "hello %s", args=("world",), level: int = logging.WARNING, exc_info=None, **extra) -> logging.LogRecord:
    made = logging.LogRecord("agentnet.test", level, __file__, 1, message, args, exc_info)
    made.__dict__.update(extra)
    return made


def test_a_json_line_has_the_time_level_logger_message_and_what_the_process_is():
    line = json.loads(logs.JsonFormatter(CONTEXT).format(record(subject="agent.3.state")))
    assert {key: line[key] for key in ("level", "logger", "message", "network", "component", "subject")} == {
        "level": "warning", "logger": "agentnet.test", "message": "hello world", "network": "demo",
        "component": "crdt-service", "subject": "agent.3.state",
    }  # fmt: skip
    assert line["time"].endswith("Z")
    stamp = datetime.fromisoformat(line["time"])
    assert stamp.utcoffset().total_seconds() == 0 and abs(stamp.timestamp() - record().created) < 60
    assert "exception" not in line


def test_an_exception_is_one_field_of_one_line():
    try:
        {}["body"]
    except KeyError:
        text = logs.JsonFormatter(CONTEXT).format(record("failed", (), logging.ERROR, sys.exc_info()))
    assert "\n" not in text
    line = json.loads(text)
    assert line["message"] == "failed" and line["exception"].startswith("Traceback") and "KeyError: 'body'" in line["exception"]


@given(message=st.text(), value=st.one_of(st.text(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.none(), st.lists(st.integers())))
def test_any_message_and_field_make_one_line_of_json_that_keeps_them(message, value):
    text = logs.JsonFormatter(CONTEXT).format(record("%s", (message,), field=value))
    assert "\n" not in text and "\r" not in text.replace("\\r", "")
    line = json.loads(text)
    assert line["message"] == message and line["field"] == value


def test_a_field_json_cannot_hold_is_written_as_its_repr():
    line = json.loads(logs.JsonFormatter().format(record(thing=object)))
    assert line["thing"] == repr(object)
    line = json.loads(logs.JsonFormatter().format(record(ratio=float("nan"))))  # strict JSON: no NaN
    assert line["ratio"] == "nan" and line["message"] == "hello world"


def test_kopf_object_records_carry_the_object_and_not_kopfs_settings():
    import kopf
    from kopf._core.actions.loggers import ObjectLogger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter({"component": "operator"}))
    kopf_logger = logging.getLogger("kopf.objects")
    kopf_logger.addHandler(handler)
    body = {"apiVersion": "agentnet.dev/v1alpha1", "kind": "AgentNetwork", "metadata": {"name": "ramanujan", "namespace": "demo", "uid": "u1"}}
    try:
        ObjectLogger(body=kopf.Body(body), settings=kopf.OperatorSettings()).warning("reconciled %d children", 3)
    finally:
        kopf_logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == "reconciled 3 children" and line["component"] == "operator"
    assert line["object"] == {"apiVersion": "agentnet.dev/v1alpha1", "kind": "AgentNetwork", "name": "ramanujan", "uid": "u1", "namespace": "demo"}
    assert "settings" not in line and "k8s_skip" not in line and "k8s_ref" not in line
    text = logs.TextFormatter({"component": "operator"}).format(
        record("reconciled", (), k8s_ref={"name": "ramanujan", "namespace": "demo"})
    )
    assert text.endswith(" WARNING agentnet.test [component=operator]: [demo/ramanujan] reconciled")


def test_text_names_the_process_and_keeps_the_traceback():
    try:
        raise ValueError("bad")
    except ValueError:
        text = logs.TextFormatter(CONTEXT).format(record("failed", (), logging.ERROR, sys.exc_info()))
    first, *rest = text.splitlines()
    assert first.endswith(" ERROR agentnet.test [network=demo component=crdt-service]: failed")
    assert rest[0].startswith("Traceback") and rest[-1] == "ValueError: bad"


@pytest.mark.parametrize(
    "flags, env, expected",
    [
        ((None, None), {}, logs.LogSettings("info", "json")),
        ((None, None), {"LOG_LEVEL": "DEBUG", "LOG_FORMAT": "Text"}, logs.LogSettings("debug", "text")),
        (("error", "json"), {"LOG_LEVEL": "debug", "LOG_FORMAT": "text"}, logs.LogSettings("error", "json")),  # flags win
        ((None, None), {"LOG_LEVEL": " warning "}, logs.LogSettings("warning", "json")),
    ],
)
def test_flags_then_environment_then_defaults(flags, env, expected):
    assert logs.LogSettings.resolve(*flags, env=env) == expected


@pytest.mark.parametrize("variable, value", [("LOG_LEVEL", "verbose"), ("LOG_LEVEL", ""), ("LOG_FORMAT", "yaml")])
def test_a_bad_value_names_the_variable_and_the_allowed_values(variable, value):
    with pytest.raises(logs.LogSettingError) as error:
        logs.LogSettings.resolve(env={variable: value})
    allowed = logs.LEVELS if variable == "LOG_LEVEL" else logs.FORMATS
    assert str(error.value).startswith(f"{variable}={value!r} is not allowed") and all(name in str(error.value) for name in allowed)


def test_setup_sends_every_logger_to_stdout_at_the_level(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup(logs.LogSettings("warning", "json"), network="demo", agents="0-3")
        logging.getLogger("agentnet.transport").info("not shown")
        logging.getLogger("uvicorn.error").warning("shown")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert [(line["logger"], line["message"], line["network"], line["agents"]) for line in lines] == [
        ("uvicorn.error", "shown", "demo", "0-3")
    ]


@pytest.mark.parametrize("command", [["agent"], ["component", "duck-colors"], ["up", "-f", "network.yaml"], ["operator"]])
def test_every_command_refuses_a_bad_log_level_naming_it(command, tmp_path):
    (tmp_path / "network.yaml").write_text("metadata: {name: demo}\nspec: {agents: 3, topology: {kind: ring}}\n")
    config = tmp_path / "network.json"
    from runtime_support import network_document

    config.write_text(json.dumps(network_document(3, "ring")))
    env = {**os.environ, "LOG_LEVEL": "loud", "AGENTNET_CONFIG": str(config), "KUBECONFIG": str(tmp_path / "none")}
    result = subprocess.run([AGENTNET, *command], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "LOG_LEVEL='loud' is not allowed: use one of debug, info, warning, error, critical" in result.stderr
    assert "Traceback" not in result.stderr
    flag = subprocess.run([AGENTNET, *command, "--log-format", "yaml"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert flag.returncode == 2 and "'yaml' is not one of 'json', 'text'" in flag.stderr


PORT = "<free port>"  # in a command for run_until_logged: a port chosen afresh at each attempt
ATTEMPTS = 3  # a port chosen free can be taken by another process before ours binds it


def run_until_logged(command: list[str], env: dict, says: str, timeout: float = 60) -> list[str]:
    """Run an agentnet process until its stdout has a line containing `says`; its stdout lines (it is stopped).
    Each PORT in `command` is a free port, chosen again if another process took it first."""
    from agentnet_runtime.natsbin import free_port

    for attempt in range(1, ATTEMPTS + 1):
        lines, err = _run_until_logged([str(free_port()) if arg == PORT else arg for arg in command], env, says, timeout)
        if "address already in use" not in err or attempt == ATTEMPTS:
            break
    assert any(says in line for line in lines), (lines, err)
    assert "Traceback" not in err, err
    return lines


def _run_until_logged(command: list[str], env: dict, says: str, timeout: float) -> tuple[list[str], str]:
    import signal
    import time

    process = subprocess.Popen([AGENTNET, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **env})  # fmt: skip
    lines: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = process.stdout.readline()  # the process logs at info: it says when it serves
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if says in line:
                break
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return lines + out.splitlines(), err


def test_agent_and_component_processes_write_json_lines_that_say_what_they_are(tmp_path, nats_server):
    from runtime_support import network_document

    config = tmp_path / "network.json"
    config.write_text(json.dumps(network_document(3, "ring", name="demo")))
    common = ["--config", str(config), "--nats-url", nats_server.url, "--host", "127.0.0.1"]
    agent = run_until_logged(["agent", "--agents", "0-2", *common, "--port", PORT], {"LOG_LEVEL": "info"},
                             "serving on port")  # fmt: skip
    component = run_until_logged(["component", "agent-orchestrator", *common, "--port", PORT],
                                 {"LOG_LEVEL": "INFO", "LOG_FORMAT": "json"}, "serving on port")  # fmt: skip
    for lines, what in ((agent, {"agents": "0-2"}), (component, {"component": "agent-orchestrator"})):
        parsed = [json.loads(line) for line in lines]  # every line of stdout is one JSON object
        assert all(line["network"] == "demo" and {"time", "level", "logger", "message"} <= set(line) for line in parsed)
        assert all(line[key] == value for line in parsed for key, value in what.items())
        assert any(line["level"] == "info" and "serving on port" in line["message"] for line in parsed)
    text = run_until_logged(["component", "duck-colors", "--config", str(config), "--host", "127.0.0.1", "--port", PORT],
                            {"LOG_LEVEL": "info", "LOG_FORMAT": "text"}, "serving on port")  # fmt: skip
    assert any(" INFO agentnet.component [network=demo component=duck-colors]: component duck-colors" in line for line in text)


def test_the_operator_writes_kopfs_records_as_json_lines_too(tmp_path):
    """kopf.run configures no logging of its own: its records go through logs.py's handler. No cluster is needed
    to see it: kopf logs its start and its failing requests to an API server that is not there."""
    from agentnet_runtime.natsbin import free_port

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}], "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    }))  # fmt: skip
    command = ["operator", "--kubeconfig", str(kubeconfig), "--liveness-port", PORT, "--metrics-port", PORT]
    lines = [json.loads(line) for line in run_until_logged(command, {"LOG_LEVEL": "info"}, "Request attempt #1")]
    assert all(line["component"] == "operator" and {"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert {"kopf.activities.startup", "kopf._core.reactor.observation"} <= {line["logger"] for line in lines}
    assert any(line["level"] == "error" and line["message"].startswith("Request attempt #1") for line in lines)
