"""dashboard: the live page of the network, in a real browser, on real networks.

The browser tests drive Debian's headless Chromium (dashboard_support.py) and read what the page
drew: SVG circles with their computed colours, the convergence indicator, the component rows.
Screenshots go to the test's tmp dir and to tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import asynccontextmanager, contextmanager
from fractions import Fraction

import httpx
import pytest
import yaml
from component_support import component_config, serving
from dashboard_support import Heartbeats, Page, Processes, browser, dominant, drawn_agents, hex_rgb, page_wait, rgb, save_screenshot
from prometheus_client import CollectorRegistry, Histogram
from runtime_support import FAST, eventually, network_document, runtime_config

from agentnet_runtime import components
from agentnet_runtime.agent.host import AgentHost
from agentnet_runtime.components.dashboard import ComponentSeries, layout, latency_totals
from agentnet_runtime.core.membership import GONE_AFTER
from agentnet_runtime.config import ConfigError, NetworkConfig
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.terms import parse
from agentnet_runtime.local.up import network_document_from
from agentnet_runtime.natsbin import free_port
from agentnet_runtime.settings import GuardSettings
from agentnet_runtime.web import HttpServer
from rig import wait_for

HEARTBEAT = 0.5  # seconds, of the agent processes and as the dashboard is told: gone after 1.5 s of silence
CONVERGED = "document.querySelector('#convergence').dataset.converged === 'true'"


def assert_drawn_in_polarity(page: Page, nodes: list[dict]) -> None:
    """Every agent is drawn once: its ring in its polarity, its fill in its display colour."""
    drawn = drawn_agents(page)
    assert sorted(drawn) == [node["id"] for node in nodes]
    for node in nodes:
        agent = drawn[node["id"]]
        assert agent["polarity"] == node["colour"]
        assert dominant(agent["stroke"]) == node["colour"], f"agent {node['id']} ring is {agent['stroke']}"
        if agent["state"] != "gone":
            assert rgb(agent["fill"]) == hex_rgb(node["display"]), f"agent {node['id']} fill is {agent['fill']}"


# --- in a browser, under `agentnet up` ------------------------------------------------------------------


@contextmanager
def page_under_up(tmp_path, name: str, components: list[str], *flags: str):
    """`agentnet up` of 9 agents with these components (and `flags`), and the dashboard open once every agent
    is alive: (page, base URL, the agents as the operator assigns them); `up` must stop cleanly on SIGINT."""
    body = {
        "apiVersion": "agentnet.dev/v1alpha1", "kind": "AgentNetwork", "metadata": {"name": name},
        "spec": {"agents": 9, "topology": {"kind": "ramanujan", "degree": 4, "seed": 0},
                 "components": [{"name": component} for component in components]},
    }  # fmt: skip
    (tmp_path / "network.yaml").write_text(yaml.safe_dump(body))
    port, processes = free_port(), Processes(tmp_path)
    base = f"http://127.0.0.1:{port}"
    processes.start("up", "up", "-f", "network.yaml", "--port", str(port), "--data-dir", str(tmp_path / "data"), *flags)
    try:
        processes.wait_healthy("up", port)
        with browser() as page:
            page.page.goto(f"{base}/dashboard/")
            page_wait(
                page, "document.querySelectorAll('#nodes g.agent[data-state=alive]').length === 9", "9 alive agents"
            )
            yield page, base, network_document_from(body)["nodes"]
            assert page.not_local() == [], "the page must fetch nothing from outside"
        assert processes.interrupt("up") == 0, processes.log("up")
    finally:
        processes.stop_all()


@pytest.mark.timeout(180)
def test_the_page_under_up_draws_the_network_and_turns_green_after_terms(tmp_path):
    with page_under_up(tmp_path, "dash", ["duck-colors", "dashboard"]) as (page, base, nodes):
        assert_drawn_in_polarity(page, nodes)  # the colours the operator assigns

        page_wait(page, CONVERGED, "the network converged")
        before = page.page.get_attribute("#convergence", "data-digest")
        indicator = page.page.evaluate("getComputedStyle(document.querySelector('#convergence')).backgroundColor")
        assert dominant(indicator) == "GREEN"

        for agent, term in ((0, "x*(y+z)"), (4, "a+b"), (8, "c*d")):  # small: they saturate at once
            assert httpx.post(f"{base}/agent/{agent}/message", json={"term": term}, timeout=5).status_code == 202
        after = page_wait(
            page, f"{CONVERGED} && document.querySelector('#convergence').dataset.digest !== '{before}'"
            " && document.querySelector('#convergence').dataset.digest",
            "convergence on the e-graph with the submitted terms", timeout=60,
        )  # fmt: skip

        def agents_hold(digest):
            return all(httpx.get(f"{base}/agent/{i}/state", timeout=5).json()["digest"] == digest for i in range(9))

        # The green digest is the agents' own (they may have rewritten further meanwhile: read it again then).
        wait_for(
            lambda: agents_hold(page.page.get_attribute("#convergence", "data-digest")), 30, "the agents' digest"
        )
        assert after != before

        # Under `up` the agents write the timeline to DuckDB in the same process; the page shows it. They
        # hold one e-graph, so there is no message traffic among them to list (see the next test for some).
        page_wait(page, "document.querySelectorAll('#timeline li[data-kind=submit]').length === 3", "the 3 submits")
        page_wait(page, "document.querySelector('#timeline li[data-kind=rewrite]') !== null", "a rewrite in the timeline")
        assert "duckdb" in page.page.text_content("#timeline-source")
        assert page.page.evaluate("document.querySelectorAll('#timeline li.chatter').length") == 0

        for _ in range(20):  # requests to a component show up in its row, read from this process's registry
            httpx.get(f"{base}/colors/palette", timeout=5)
        page_wait(
            page,
            "(window.agentnetDashboard.metrics['duck-colors'] || []).some(p => p[2] > 0)",
            "duck-colors requests",
        )
        assert page.page.get_attribute("#components tr[data-component=duck-colors]", "data-source") == "registry"

        assert page.requested, "the request log is empty: the page was not watched"
        save_screenshot(page, tmp_path, "dashboard-up.png")


def ask_on_the_page(page: Page, lhs: str, rhs: str = "", agent: int = 0) -> dict:
    """Type a question into the ask panel and submit it with the keyboard; the newest answer as listed."""
    asked = page.page.evaluate("document.querySelectorAll('#asks li').length")
    page.page.fill("#ask-lhs", lhs)
    page.page.fill("#ask-rhs", rhs)
    page.page.select_option("#ask-agent", str(agent))
    page.page.press("#ask-rhs", "Enter")
    page_wait(page, f"document.querySelectorAll('#asks li').length === {asked + 1}", f"the answer to {lhs} {rhs}")
    return page.page.evaluate("""() => { const li = document.querySelector('#asks li');
        return {verdict: li.dataset.verdict, question: li.querySelector('code').textContent,
                detail: li.querySelector('.detail').textContent}; }""")


def held_everywhere(page: Page, base: str, agents: int, held) -> None:
    """The page rings every agent for the newest ask, and each agent's own replica (read from the agent,
    not the dashboard) holds what `held(egraph)` checks."""
    page_wait(
        page, f"document.querySelector('#asks li .arrival').dataset.held === '{agents}' && "
        f"document.querySelectorAll('#nodes g.agent[data-ask=held]').length === {agents}", "every agent holding the ask"
    )  # fmt: skip
    for agent in range(agents):
        wire = httpx.get(f"{base}/agent/{agent}/egraph", timeout=5).json()
        assert held(EGraph("reader").join(wire)), f"agent {agent} is shown holding the ask but does not"


@pytest.mark.timeout(240)
def test_a_person_asks_the_network_from_the_page_and_watches_the_answer_spread(tmp_path):
    with page_under_up(tmp_path, "ask", ["dashboard"]) as (page, base, _):
        assert page.page.get_attribute("#ask-lhs", "id") == page.page.get_attribute("label[for=ask-lhs]", "for")
        page_wait(page, "window.agentnetDashboard.updates > 0", "the first update")
        assert page.page.is_hidden("#ask-token") and page.page.is_hidden("#ask-token-help")  # an open network

        # A term the engine has no laws for: the error names the field and the operator, at the field.
        page.page.fill("#ask-lhs", "x % 2")
        page.page.fill("#ask-rhs", "x")
        page.page.press("#ask-lhs", "Enter")
        page.page.wait_for_selector("#ask-error:not([hidden])", timeout=30_000)
        error = page.page.text_content("#ask-error")
        assert "prove[0]" in error and "'%'" in error, error
        assert page.page.get_attribute("#ask-lhs", "aria-invalid") == "true"
        assert page.page.evaluate("document.activeElement.id") == "ask-lhs"
        assert page.page.evaluate("document.querySelectorAll('#asks li').length") == 0

        # A term, added through agent 4 (picked on the graph), reaches every agent's replica.
        page.page.click("#nodes g.agent[data-agent='4']")
        assert page.page.input_value("#ask-agent") == "4"
        added = ask_on_the_page(page, "x*(y+z)", agent=4)
        assert added["verdict"] == "added" and "agent 4" in added["detail"], added
        assert page.page.is_hidden("#ask-error") and page.page.get_attribute("#ask-lhs", "aria-invalid") is None
        held_everywhere(page, base, 9, lambda egraph: egraph.lookup(parse("x*(y+z)")) is not None)

        # Equal, with the rules used; the network learns the equality, not only the two terms.
        equal = ask_on_the_page(page, "x+x", "2*x", agent=2)
        assert equal["verdict"] == "equal" and equal["detail"].startswith("rules used: "), equal
        assert len(equal["detail"].removeprefix("rules used: ").split(", ")) >= 1
        held_everywhere(page, base, 9, lambda egraph: egraph.equivalent(parse("x+x"), parse("2*x")))

        # Unequal, with a counterexample whose values are right at the point shown.
        unequal = ask_on_the_page(page, "x+1", "x+2")
        assert unequal["verdict"] == "unequal", unequal
        shown = re.fullmatch(r"counterexample at x = (\S+): x \+ 1 = (\S+), x \+ 2 = (\S+)", unequal["detail"])
        assert shown, unequal["detail"]
        x, lhs, rhs = (Fraction(value) for value in shown.groups())
        assert (lhs, rhs) == (x + 1, x + 2)

        # Unknown: x/x is 1 only where x is not 0, which no rule can know of a variable.
        unknown = ask_on_the_page(page, "x/x", "1")
        assert unknown["verdict"] == "unknown" and "neither derived" in unknown["detail"], unknown
        held_everywhere(page, base, 9, lambda egraph: egraph.lookup(parse("x/x")) is not None)
        assert page.page.evaluate("document.querySelectorAll('#asks li').length") == 4

        refused = httpx.post(f"{base}/dashboard/ask", json={"term": "x", "agent": 9}, timeout=5)
        assert refused.status_code == 422 and refused.json()["field"] == "agent"
        save_screenshot(page, tmp_path, "dashboard-ask.png")


@pytest.mark.timeout(240)
def test_where_the_network_has_an_api_token_the_page_asks_with_it(tmp_path, monkeypatch):
    """As in a cluster, where every pod has the network's token: `up --require-token` guards /dashboard/ask."""
    token = "the-networks-api-token-0123456789"
    monkeypatch.setenv(GuardSettings.env_name("api_token"), token)
    with page_under_up(tmp_path, "guarded", ["dashboard"], "--require-token") as (page, base, _):
        page_wait(page, "window.agentnetDashboard.updates > 0", "the first update")
        assert page.page.is_visible("#ask-token") and page.page.get_attribute("#ask-token", "type") == "password"
        assert page.page.get_attribute("#ask-token", "id") == page.page.get_attribute("label[for=ask-token]", "for")
        help_text = page.page.text_content("#ask-token-help")
        assert "kubectl get secret guarded-api-token" in help_text and page.page.is_visible("#ask-token-help")

        # No token, then a wrong one: the server's 401, at the token field; nothing is asked.
        for given, said in (("", "needs the network's API token"), ("not-the-token-0123456789", "not the network's")):
            page.page.fill("#ask-token", given)
            page.page.fill("#ask-lhs", "x*(y+z)")
            page.page.press("#ask-lhs", "Enter")
            page_wait(page, f"document.querySelector('#ask-error').textContent.includes({json.dumps(said)})", said)
            assert page.page.get_attribute("#ask-error", "data-field") == "Authorization"
            assert page.page.get_attribute("#ask-token", "aria-invalid") == "true"
            assert page.page.evaluate("document.activeElement.id") == "ask-token"
            assert page.page.evaluate("document.querySelectorAll('#asks li').length") == 0

        # The network's token: asked, and the agent holds it; the tab keeps the token across a reload.
        page.page.fill("#ask-token", token)
        added = ask_on_the_page(page, "x*(y+z)", agent=4)
        assert added["verdict"] == "added" and page.page.get_attribute("#ask-token", "aria-invalid") is None, added
        held_everywhere(page, base, 9, lambda egraph: egraph.lookup(parse("x*(y+z)")) is not None)
        page.page.reload()
        page_wait(page, "document.querySelectorAll('#nodes g.agent[data-state=alive]').length === 9", "9 alive agents")
        assert page.page.input_value("#ask-token") == token
        assert ask_on_the_page(page, "x+x", "2*x")["verdict"] == "equal"
        assert httpx.post(f"{base}/dashboard/ask", json={"term": "x"}, timeout=5).status_code == 401  # not open
        save_screenshot(page, tmp_path, "dashboard-ask-token.png")


# --- in a browser, agents as processes: a killed one is shown gone ----------------------------------


@pytest.mark.timeout(180)
def test_a_killed_agent_process_is_shown_gone(tmp_path, nats_server):
    document = network_document(9)
    ports = {name: free_port() for name in ("agents-a", "agents-b", "duck-colors", "dashboard")}
    document["components"] = {
        "duck-colors": {**document["components"]["duck-colors"], "url": f"http://127.0.0.1:{ports['duck-colors']}"},
        "dashboard": {**document["components"]["dashboard"],
                      "settings": {"heartbeat_interval": str(HEARTBEAT), "metrics_source": "urls"}},
    }  # fmt: skip
    (tmp_path / "network.json").write_text(json.dumps(document))
    common = ["--config", str(tmp_path / "network.json"), "--nats-url", nats_server.url, "--host", "127.0.0.1"]
    agent_flags = ["--heartbeat-interval", str(HEARTBEAT), "--sync-interval", "0.25", "--log-level", "warning"]
    processes = Processes(tmp_path)
    processes.start("agents-a", "agent", "--agents", "0-4", *common, "--port", str(ports["agents-a"]), *agent_flags)
    processes.start("agents-b", "agent", "--agents", "5-8", *common, "--port", str(ports["agents-b"]), *agent_flags)
    processes.start("duck-colors", "component", "duck-colors", *common, "--port", str(ports["duck-colors"]))
    processes.start("dashboard", "component", "dashboard", *common, "--port", str(ports["dashboard"]))
    try:
        for name, port in ports.items():
            processes.wait_healthy(name, port)
        with browser() as page:
            page.page.goto(f"http://127.0.0.1:{ports['dashboard']}/")
            page_wait(
                page, "document.querySelectorAll('#nodes g.agent[data-state=alive]').length === 9", "9 alive agents"
            )
            assert_drawn_in_polarity(page, document["nodes"])

            # Agents with no DuckDB file publish their timeline on NATS: the page lists it. A network at
            # rest exchanges nothing, so give it news: the pushes and the syncs that follow are listed.
            httpx.post(f"http://127.0.0.1:{ports['agents-a']}/agent/0/message", json={"term": "x*(y+z)"}, timeout=10).raise_for_status()
            page.page.wait_for_selector("#timeline li[data-kind=sync]", timeout=30_000)
            assert page.page.text_content("#timeline-source").startswith("from nats")
            # The traffic does not drown the rest: hide it, and the submit stays.
            page.page.uncheck("#show-chatter")
            assert not page.page.is_visible("#timeline li[data-kind=sync]")
            assert page.page.is_visible("#timeline li[data-kind=submit]")
            page.page.check("#show-chatter")

            # A component elsewhere is read at its URL (its own /metrics).
            page_wait(page, "document.querySelector('#components tr[data-component=duck-colors]').dataset.source === 'url'",
                      "duck-colors read at its URL")  # fmt: skip
            for _ in range(20):
                httpx.get(f"http://127.0.0.1:{ports['duck-colors']}/palette", timeout=5)
            page_wait(
                page,
                "(window.agentnetDashboard.metrics['duck-colors'] || []).some(p => p[2] > 0)",
                "duck-colors requests",
            )

            processes.kill("agents-b")  # agents 5..8, without a chance to say goodbye
            gone_within = GONE_AFTER * HEARTBEAT + 15  # the membership rule, plus slack for a busy machine
            page_wait(page, "[5, 6, 7, 8].every(id => document.querySelector(`#nodes g.agent[data-agent='${id}']`)"
                      ".dataset.state === 'gone')", "agents 5..8 gone", timeout=gone_within)  # fmt: skip
            drawn = drawn_agents(page)
            for agent in range(9):
                gone = agent >= 5
                assert drawn[agent]["state"] == ("gone" if gone else "alive"), drawn[agent]
                assert (rgb(drawn[agent]["fill"]) == (158, 158, 158)) is gone  # gone agents are drawn grey
            assert page.page.text_content("#counts [data-state=gone]") == "4 gone"
            assert page.not_local() == []
            save_screenshot(page, tmp_path, "dashboard-gone.png")
    finally:
        processes.stop_all()


# --- in a browser, 1,000 agents ----------------------------------------------------------------------------

THOUSAND = 1000


@pytest.mark.timeout(300)
def test_a_thousand_agents_are_drawn_and_the_page_stays_live(tmp_path, nats_server):
    """The dashboard process on a 1,000-agent expander, its heartbeats from dashboard_support.Heartbeats:
    every agent is drawn in its colours, updates keep coming, and agents that fall silent are shown gone."""
    document = network_document(THOUSAND)
    document["components"]["dashboard"]["settings"] = {"heartbeat_interval": "1"}
    (tmp_path / "network.json").write_text(json.dumps(document))
    port, processes = free_port(), Processes(tmp_path)
    processes.start("dashboard", "component", "dashboard", "--config", str(tmp_path / "network.json"),
                    "--nats-url", nats_server.url, "--host", "127.0.0.1", "--port", str(port))  # fmt: skip
    try:
        processes.wait_healthy("dashboard", port)
        with Heartbeats(nats_server.url, document["network"], THOUSAND, interval=1.0) as beats, browser() as page:
            page.page.goto(f"http://127.0.0.1:{port}/")
            page_wait(page, f"document.querySelectorAll('#nodes g.agent[data-state=alive]').length === {THOUSAND}",
                      "1,000 alive agents", timeout=60)  # fmt: skip
            assert_drawn_in_polarity(page, document["nodes"])
            assert page.page.text_content("#topology-kind") == "ramanujan · 1000 agents"

            updates = page.page.evaluate("window.agentnetDashboard.updates")
            page_wait(page, f"window.agentnetDashboard.updates >= {updates + 4}", "four more updates")

            beats.silence(range(990, THOUSAND))
            page_wait(page, "document.querySelectorAll('#nodes g.agent[data-state=gone]').length === 10",
                      "the 10 silent agents gone", timeout=GONE_AFTER * 1 + 30)  # fmt: skip
            gone = page.page.evaluate("[...document.querySelectorAll('#nodes g.agent[data-state=gone]')]"
                                      ".map(g => Number(g.dataset.agent))")  # fmt: skip
            assert sorted(gone) == list(range(990, THOUSAND))
            assert page.page.text_content("#counts [data-state=alive]") == "990 alive"
            timings = page.page.evaluate("window.agentnetDashboard.timings")
            assert timings, "no update was timed"
            (tmp_path / "timings.json").write_text(json.dumps(timings))
            save_screenshot(page, tmp_path, "dashboard-1000.png")
            assert page.not_local() == []
    finally:
        processes.stop_all()


# --- the service in-process, on real agents (no browser) -----------------------------------------------


@asynccontextmanager
async def dashboard_server(config):
    """The dashboard Service started, behind a real HTTP server (an event stream needs one)."""
    service = components.create("dashboard", config)
    await service.start()
    http = await HttpServer(service.app(), "127.0.0.1", 0).start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}", timeout=5) as client:
            yield service, client
    finally:
        await http.stop()
        await service.stop()


async def started_host(config) -> AgentHost:
    host = AgentHost(config)
    await host.start()
    await asyncio.wait_for(host.ready.wait(), 10)
    return host


@pytest.mark.timeout(90)
async def test_convergence_and_membership_follow_the_agents(nats_server):
    # The agents beat every 0.2 s; a dashboard told 0.5 s waits 1.5 s before it calls one gone, so a
    # busy machine's late heartbeat does not make a live agent flicker out.
    assert FAST.heartbeat_interval < 0.5
    config = component_config("dashboard", nats_server.url, settings={"heartbeat_interval": "0.5"})
    net = config.network
    async with dashboard_server(config) as (service, client):

        async def state():
            return (await client.get("/state")).json()

        async def shows(predicate):
            current = await state()
            return current if predicate(current) else None

        hosts = [await started_host(runtime_config(net, nats_server.url, range(0, 5))),
                 await started_host(runtime_config(net, nats_server.url, range(5, 9)))]  # fmt: skip
        try:
            first = await eventually(
                lambda: shows(lambda s: s["converged"] and s["counts"]["alive"] == 9), 20, "9 agents, one digest"
            )

            # A partition keeps the two groups apart (heartbeats still reach the dashboard): two digests.
            groups = [range(0, 5), range(5, 9)]
            for host in hosts:
                host.transport.partition(groups)
            hosts[0].agents[0].submit(parse("x*(y+z)"))
            hosts[0].wake(hosts[0].agents[0])
            await eventually(lambda: shows(lambda s: not s["converged"] and s["digests"] == 2), 20, "two digests")
            for host in hosts:
                host.transport.heal()
            healed = await eventually(
                lambda: shows(lambda s: s["converged"] and s["digest"] != first["digest"]), 30, "one digest again"
            )
            assert {a["digest"] for a in healed["agents"]} == {healed["digest"]}

            # The event stream: the topology once, then updates.
            kinds = []
            async with client.stream("GET", "/events") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                async for line in stream.aiter_lines():
                    if line.startswith("event: "):
                        kinds.append(line.removeprefix("event: "))
                    elif line.startswith("data: ") and kinds[-1] == "topology":
                        topology = json.loads(line.removeprefix("data: "))
                    if kinds.count("update") == 3:
                        break
            assert kinds == ["topology", "update", "update", "update"]
            assert [a["id"] for a in topology["agents"]] == list(range(9)) and len(topology["edges"]) == 18
            assert all(0 <= a["x"] <= 1 and 0 <= a["y"] <= 1 for a in topology["agents"])

            await hosts[1].stop()  # agents 5..8 stop heartbeating
            gone = await eventually(lambda: shows(lambda s: s["counts"]["gone"] == 4), 20, "agents 5..8 gone")
            assert [a["state"] for a in gone["agents"]] == ["alive"] * 5 + ["gone"] * 4
            hosts[1] = await started_host(runtime_config(net, nats_server.url, range(5, 9)))
            back = await eventually(lambda: shows(lambda s: s["counts"]["alive"] == 9), 20, "agents 5..8 back")
            assert all(a["sent"] > 0 and a["received"] > 0 for a in back["agents"])  # counted from timeline.events
        finally:
            for host in hosts:
                await host.stop()


@pytest.mark.timeout(90)
async def test_an_ask_is_answered_and_each_agent_is_seen_to_hold_it(nats_server):
    config = component_config("dashboard", nats_server.url, settings={"heartbeat_interval": "0.5"})
    async with dashboard_server(config) as (service, client):
        host = await started_host(runtime_config(config.network, nats_server.url, range(9)))
        try:
            await eventually(lambda: service.update(full=False)["counts"]["alive"] == 9, 20, "9 agents alive")
            answer = (await client.post("/ask", json={"prove": ["x+x", "2*x"], "agent": 3})).json()
            assert answer["verdict"] == "equal" and answer["explanation"]["rules"] and answer["event"] == 1
            answer = (await client.post("/ask", json={"prove": ["x+1", "x+2"]})).json()
            assert answer["verdict"] == "unequal" and answer["agent"] == 0
            assert set(answer["counterexample"]) == {"point", "lhs", "rhs"} and answer["event"] == 2

            assert (await client.get("/state")).json()["ask_token"] is False  # no guard with a token here

            async def everyone_holds(event: int):
                agents = (await client.get("/state")).json()["agents"]
                return all(agent["asks"] >= event for agent in agents)

            await eventually(lambda: everyone_holds(2), 20, "every agent holding both asks")
            for agent in host.agents.values():  # what the page is told is what each replica holds
                assert agent.egraph.equivalent(parse("x+x"), parse("2*x"))
                assert agent.egraph.lookup(parse("x+2")) is not None

            for body, field in (({"term": "x % 2"}, "term"), ({"prove": ["x", "f("]}, "prove[1]"),
                                ({"term": "x", "agent": 9}, "agent"), ({"term": "x", "to": 1}, "to")):  # fmt: skip
                refused = await client.post("/ask", json=body)
                assert refused.status_code == 422 and refused.json()["field"] == field, refused.json()
            assert "'%'" in (await client.post("/ask", json={"term": "x % 2"})).json()["error"]
        finally:
            await host.stop()


async def test_the_page_comes_in_one_request_and_needs_nothing_from_outside(nats_server):
    async with serving("dashboard", component_config("dashboard", nats_server.url)) as (service, client):
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<style>" in page.text and "<script>" in page.text  # inlined: no second round trip
        assert not re.search(r"""(src|href)=["'](?!data:)""", page.text), "the page should load nothing else"
        assert not re.search(
            r"https?://(?!www\.w3\.org/2000/svg)", page.text
        ), "no address outside (but the SVG namespace)"
        script = await client.get("/static/dashboard.js")  # the files as they are, too
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        missing = await client.get("/static/nothing.js")
        assert missing.status_code == 404


# --- small parts ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "named"),
    [({"heartbeat_interval": "soon"}, "heartbeat_interval"), ({"update_interval": "2"}, "update_interval"),
     ({"update_interval": "0"}, "update_interval"), ({"metrics_source": "prometheus"}, "metrics_source")],
)  # fmt: skip
def test_bad_settings_name_the_setting_and_the_rule(settings, named):
    with pytest.raises(ConfigError, match=rf"settings\.{named} must be"):
        components.create("dashboard", component_config("dashboard", settings=settings))


def test_a_ring_is_laid_out_as_a_circle_and_positions_fit_the_page():
    ring = layout(NetworkConfig.from_json(network_document(12, kind="ring")))
    points = [(a["x"] - 0.5, a["y"] - 0.5) for a in ring["agents"]]
    radii = [(x * x + y * y) ** 0.5 for x, y in points]
    assert max(radii) - min(radii) < 0.01 and len(ring["edges"]) == 12
    big = layout(NetworkConfig.from_json(network_document(128)))
    assert all(0 <= a["x"] <= 1 and 0 <= a["y"] <= 1 for a in big["agents"])
    assert len({(a["x"], a["y"]) for a in big["agents"]}) == 128  # no two agents on one spot
    assert layout(NetworkConfig.from_json(network_document(128))) == big  # the same topology, the same picture


def test_request_figures_are_split_by_component_prefix_or_app():
    registry = CollectorRegistry()
    latency = Histogram("agentnet_http_request_duration_seconds", "", ["app", "method", "route"], registry=registry)
    latency.labels("agentnet-up", "GET", "/colors/palette").observe(0.25)  # under `up`: one app, prefixed routes
    latency.labels("agentnet-up", "POST", "/agent/{id}/message").observe(0.5)  # an agent's route: no component
    latency.labels("agentnet-up", "GET", "/dashboard/events").observe(30)  # a page's stream: not a latency
    latency.labels("duck-colors", "GET", "/palette").observe(0.75)  # a component in its own process
    totals = latency_totals(registry.collect(), ["duck-colors", "dashboard", "agent-orchestrator"])
    assert totals == {"duck-colors": [2.0, 1.0]}


def test_a_component_rate_counts_from_its_first_request_and_starts_again_after_a_restart():
    series = ComponentSeries("duck-colors")
    series.sample(1, 10.0, None, None, absent=True)  # no request yet: no series in the registry
    series.sample(2, 11.0, [4.0, 0.2], None)  # its first 4 requests, within that second
    series.sample(3, 13.0, [8.0, 0.6], None)
    series.sample(4, 14.0, [1.0, 0.1], None)  # fewer than before: the process restarted, no figure
    series.sample(5, 15.0, [3.0, 0.3], 7)
    assert [point[2] for point in series.history] == [None, 4.0, 2.0, None, 2.0]  # requests/s
    assert [point[3] for point in series.history] == [None, 50.0, 100.0, None, 100.0]  # mean latency, ms
    assert series.history[-1][4] == 7  # lag
