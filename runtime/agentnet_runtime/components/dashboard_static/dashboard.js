// agentnet dashboard: draws what the server pushes on its event stream (dashboard.py).
//   `topology` (once per connection): agents with positions and colours, edges -> the graph is built once;
//   `update` (every update_interval): agent states, convergence, new timeline events, component metrics.
// The ask panel posts a person's term or pair to `ask`; each update says how many of the dashboard's asks
// each agent's replica holds, and the graph rings the agents that hold the newest one.
// window.agentnetDashboard holds what was drawn, for tests and for the curious.
"use strict";
(() => {
  const SVG = "http://www.w3.org/2000/svg"; // the SVG namespace name, not something fetched
  const MAX_TIMELINE = 200; // list items kept of message traffic, and as many of the other events
  const CHART_POINTS = 60; // samples a sparkline shows
  const MAX_ASKS = 20; // answers kept in the ask panel
  const TIMINGS = 50; // updates whose cost is kept (model.timings), for tests and the curious
  const TOKEN_KEY = "agentnet-api-token"; // where this tab keeps the API token the ask panel sends
  const $ = (selector) => document.querySelector(selector);

  const model = {
    topology: null,
    agents: {}, // id -> {polarity, display, state, nodes, events, sent, received, age, agreeing, digest}
    converged: null,
    digest: null,
    metrics: {}, // component -> [[sample, time, rate, latency ms, lag], ...]
    timelineShown: 0,
    updates: 0,
    graphDrawnAt: null, // ms since navigation start when the first full frame with every agent was drawn
    asks: [], // answers to the ask panel, newest first: the server's answer plus `held` (agents holding it)
    timings: [], // the newest updates' cost in ms: {apply: script, painted: until the frame after it was painted}
  };
  window.agentnetDashboard = model;

  const view = { nodes: {}, rows: {}, components: {}, topologyKey: null, selected: null, lastEvent: 0, chatter: new Set() };

  // --- topology: built once --------------------------------------------------------------------------

  function markOnce(name) { // the first time each step of drawing the page happened (read by the benchmark)
    if (!performance.getEntriesByName(name).length) performance.mark(name);
  }

  function buildTopology(topology) {
    markOnce("agentnet-topology-received");
    const key = JSON.stringify([topology.agents, topology.edges]);
    model.topology = topology;
    view.chatter = new Set(topology.chatter || []);
    $("#network-name").textContent = topology.network;
    $("#topology-kind").textContent = `${topology.kind || ""} · ${topology.agents.length} agents`;
    // A (re)connection's first update brings the recent timeline and the metric history again:
    // start those afresh (the server may have restarted and numbered anew).
    $("#timeline").replaceChildren();
    view.lastEvent = 0;
    model.metrics = {};
    if (key === view.topologyKey) return; // the drawing stands
    view.topologyKey = key;
    const count = topology.agents.length;
    const radius = Math.max(9, Math.min(42, 260 / Math.sqrt(count)));
    const at = (agent) => [60 + agent.x * 880, 60 + agent.y * 880];
    const byId = {};
    topology.agents.forEach((agent) => { byId[agent.id] = agent; });

    $("#edges").setAttribute("d", topology.edges.map(([a, b]) => {
      const [x1, y1] = at(byId[a]); const [x2, y2] = at(byId[b]);
      return `M${x1.toFixed(1)} ${y1.toFixed(1)}L${x2.toFixed(1)} ${y2.toFixed(1)}`;
    }).join(""));

    const nodes = $("#nodes");
    const rows = $("#agent-rows");
    nodes.replaceChildren();
    rows.replaceChildren();
    view.nodes = {}; view.rows = {}; model.agents = {};
    const nodeFragment = document.createDocumentFragment();
    const rowFragment = document.createDocumentFragment();
    for (const agent of topology.agents) {
      const [x, y] = at(agent);
      const group = document.createElementNS(SVG, "g");
      group.setAttribute("class", "agent");
      group.dataset.agent = agent.id;
      group.dataset.polarity = agent.colour;
      group.dataset.state = "unseen";
      const circle = document.createElementNS(SVG, "circle");
      circle.setAttribute("cx", x.toFixed(1));
      circle.setAttribute("cy", y.toFixed(1));
      circle.setAttribute("r", radius.toFixed(1));
      circle.setAttribute("fill", agent.display);
      circle.setAttribute("class", `polarity-${agent.colour}`);
      const title = document.createElementNS(SVG, "title");
      title.textContent = `agent ${agent.id} (${agent.colour})`;
      const halo = document.createElementNS(SVG, "circle"); // after the agent's circle: it rings an ask's arrival
      halo.setAttribute("class", "halo");
      halo.setAttribute("cx", x.toFixed(1));
      halo.setAttribute("cy", y.toFixed(1));
      halo.setAttribute("r", (radius + Math.max(5, radius * 0.3)).toFixed(1));
      group.append(circle, halo, title);
      if (count <= 64) {
        const label = document.createElementNS(SVG, "text");
        label.setAttribute("x", x.toFixed(1));
        label.setAttribute("y", y.toFixed(1));
        label.textContent = agent.id;
        group.append(label);
      }
      group.addEventListener("click", () => select(agent.id));
      nodeFragment.append(group);
      view.nodes[agent.id] = { group, title };

      const row = document.createElement("div");
      row.className = "row";
      row.setAttribute("role", "row");
      row.dataset.agent = agent.id;
      row.dataset.state = "unseen";
      const cells = {};
      for (const name of ["id", "polarity", "state", "nodes", "events", "messages", "age", "agreeing", "digest"]) {
        cells[name] = document.createElement("span");
        cells[name].className = name;
        row.append(cells[name]);
      }
      cells.id.textContent = agent.id;
      const swatch = document.createElement("span");
      swatch.className = `swatch polarity-${agent.colour}`;
      cells.polarity.append(swatch, agent.colour);
      row.addEventListener("click", () => select(agent.id));
      rowFragment.append(row);
      view.rows[agent.id] = { row, cells, text: {} };
      model.agents[agent.id] = { polarity: agent.colour, display: agent.display, neighbours: agent.neighbours, state: "unseen" };
    }
    nodes.append(nodeFragment);
    rows.append(rowFragment);
    $("#ask-agent").replaceChildren(...topology.agents.map((agent) => new Option(`${agent.id} (${agent.colour})`, agent.id)));
    buildComponents(topology.components || []);
    markOnce("agentnet-topology-built");
  }

  function buildComponents(names) {
    const body = $("#components tbody");
    body.replaceChildren();
    view.components = {};
    for (const name of names) {
      const row = document.createElement("tr");
      row.dataset.component = name;
      const label = document.createElement("td");
      label.textContent = name;
      row.append(label);
      const parts = {};
      for (const metric of ["rate", "latency", "lag"]) {
        const cell = document.createElement("td");
        const text = document.createElement("span");
        const canvas = document.createElement("canvas");
        canvas.width = 90 * devicePixelRatio; canvas.height = 20 * devicePixelRatio;
        canvas.style.width = "90px"; canvas.style.height = "20px";
        cell.append(text, canvas);
        row.append(cell);
        parts[metric] = { text, canvas };
      }
      body.append(row);
      view.components[name] = { row, label, parts };
    }
  }

  function select(id) {
    if (view.selected !== null && view.nodes[view.selected]) {
      view.nodes[view.selected].group.classList.remove("selected");
      view.rows[view.selected].row.classList.remove("selected");
    }
    view.selected = id;
    view.nodes[id].group.classList.add("selected");
    view.rows[id].row.classList.add("selected");
    view.rows[id].row.scrollIntoView({ block: "nearest" });
    $("#ask-agent").value = id; // the next ask goes to the agent picked on the graph
  }

  // --- updates ------------------------------------------------------------------------------------------

  function setText(entry, name, value) {
    if (entry.text[name] !== value) {
      entry.text[name] = value;
      entry.cells[name].textContent = value;
    }
  }

  function applyAgents(agents) {
    for (const state of agents) {
      const node = view.nodes[state.id];
      const entry = view.rows[state.id];
      if (!node) continue;
      const known = model.agents[state.id];
      Object.assign(known, state);
      if (node.group.dataset.state !== state.state) {
        node.group.dataset.state = state.state;
        entry.row.dataset.state = state.state;
      }
      const age = state.age === null ? "never" : `${state.age.toFixed(1)} s ago`;
      const title = `agent ${state.id} (${known.polarity}) ${state.state} · ${state.nodes} e-nodes · heartbeat ${age}`;
      if (node.titleText !== title) node.title.textContent = node.titleText = title;
      setText(entry, "state", state.state);
      setText(entry, "nodes", String(state.nodes));
      setText(entry, "events", String(state.events));
      setText(entry, "messages", `${state.sent} / ${state.received}`);
      setText(entry, "age", age);
      setText(entry, "agreeing", state.agreeing === null ? "–" : `${state.agreeing}/${known.neighbours}`);
      setText(entry, "digest", state.digest ? state.digest.slice(0, 12) : "–");
    }
  }

  function applyConvergence(update) {
    const indicator = $("#convergence");
    const c = update.counts;
    model.converged = update.converged;
    model.digest = update.digest;
    indicator.dataset.converged = String(update.converged);
    indicator.dataset.digest = update.digest || "";
    indicator.textContent = update.converged
      ? `converged · ${update.digest.slice(0, 12)}`
      : c.unseen ? `waiting for ${c.unseen} agents` : `not converged · ${update.digests} digests`;
    $("#counts").innerHTML = "";
    for (const state of ["alive", "gone", "unseen"]) {
      const span = document.createElement("span");
      span.dataset.state = state;
      span.textContent = `${c[state]} ${state}`;
      $("#counts").append(span);
    }
    $("#reports").textContent = Object.entries(update.reports)
      .map(([who, r]) => `${who}: ${r.converged ? "converged" : "not converged"} (${r.agents} agents)`).join(" · ");
  }

  function applyTimeline(timeline) {
    const kept = timeline.retention;
    const dropped = kept && kept.dropped
      ? ` · ${kept.dropped} dropped by retention, oldest kept ${kept.oldestKept === null ? "none" : new Date(kept.oldestKept * 1000).toLocaleString()}`
      : "";
    $("#timeline-source").textContent = `from ${timeline.source} · ${timeline.seen} events seen${dropped}`;
    const list = $("#timeline");
    const fragment = document.createDocumentFragment();
    for (const event of timeline.events) {
      if (event.n <= view.lastEvent) continue; // already shown (a full update after a reconnect)
      view.lastEvent = event.n;
      const item = document.createElement("li");
      item.dataset.kind = event.kind;
      if (view.chatter.has(event.kind)) item.className = "chatter";
      const time = document.createElement("span");
      time.className = "time";
      time.textContent = event.time ? new Date(event.time * 1000).toISOString().slice(11, 23) : "";
      const who = document.createElement("span");
      who.className = `who polarity-${event.colour}`;
      who.textContent = `agent ${event.agent}`;
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = event.kind;
      const rest = document.createElement("span");
      const payload = JSON.stringify(event.payload);
      rest.textContent = `${event.subject} ${payload === "{}" ? "" : payload.slice(0, 160)}`;
      item.append(time, who, kind, rest);
      fragment.prepend(item); // newest first
    }
    list.prepend(fragment);
    for (const selector of ["li.chatter", "li:not(.chatter)"]) { // oldest last: drop beyond the cap
      const items = list.querySelectorAll(selector);
      for (let i = MAX_TIMELINE; i < items.length; i++) items[i].remove();
    }
    model.timelineShown = list.children.length;
  }

  function sparkline(canvas, values) {
    const context = canvas.getContext("2d");
    context.clearRect(0, 0, canvas.width, canvas.height);
    const numbers = values.filter((v) => v !== null);
    if (numbers.length < 2) return;
    const top = Math.max(...numbers) || 1;
    const step = canvas.width / (CHART_POINTS - 1);
    const offset = CHART_POINTS - values.length;
    context.beginPath();
    values.forEach((value, index) => {
      if (value === null) return;
      const x = (offset + index) * step;
      const y = canvas.height - 2 - (value / top) * (canvas.height - 4);
      context.lineTo(x, y);
    });
    context.strokeStyle = "#1f77b4";
    context.lineWidth = 1.5 * devicePixelRatio;
    context.stroke();
  }

  function applyMetrics(metrics) {
    for (const [name, series] of Object.entries(metrics)) {
      const points = model.metrics[name] || (model.metrics[name] = []);
      const last = points.length ? points[points.length - 1][0] : 0;
      for (const point of series.points) if (point[0] > last) points.push(point);
      points.splice(0, Math.max(0, points.length - CHART_POINTS));
      const row = view.components[name];
      if (!row) continue;
      row.label.title = series.error || `from ${series.source || "nowhere yet"}`;
      row.row.dataset.source = series.source || "";
      const newest = points[points.length - 1] || [];
      const show = (value, digits) => (value === null || value === undefined ? "–" : value.toFixed(digits));
      [["rate", 2, 1], ["latency", 3, 2], ["lag", 4, 0]].forEach(([metric, column, digits]) => {
        row.parts[metric].text.textContent = show(newest[column], digits);
        sparkline(row.parts[metric].canvas, points.map((point) => point[column]));
      });
    }
  }

  // --- asks: a person's question, its answer, and its spread over the agents ------------------------------

  async function ask(event) {
    event.preventDefault(); // Enter in a field submits the form: ask without leaving the page
    const lhs = $("#ask-lhs").value.trim();
    const rhs = $("#ask-rhs").value.trim();
    const body = rhs ? { prove: [lhs, rhs] } : { term: lhs };
    body.agent = Number($("#ask-agent").value || 0);
    const token = $("#ask-token").value.trim();
    const headers = { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) };
    const button = $("#ask-submit");
    button.disabled = true;
    showAskError(null);
    try {
      const response = await fetch("ask", { method: "POST", headers, body: JSON.stringify(body) });
      const answer = await response.json().catch(() => ({ error: `the dashboard answered HTTP ${response.status}` }));
      if (response.status === 401) showTokenField(true); // (a token the server now wants, or a wrong one)
      if (response.ok && token) remember(token);
      if (response.ok) addAsk(answer);
      else showAskError(answer);
    } catch (error) {
      showAskError({ error: `the dashboard did not answer (${error.message})` });
    } finally {
      button.disabled = false;
    }
  }

  function showAskError(answer) {
    // The server names the field at fault (term, prove[0], prove[1], agent): mark that control and move there.
    const controls = {
      term: "#ask-lhs", "prove[0]": "#ask-lhs", "prove[1]": "#ask-rhs", agent: "#ask-agent", Authorization: "#ask-token",
    };
    for (const selector of new Set(Object.values(controls))) $(selector).removeAttribute("aria-invalid");
    const message = $("#ask-error");
    message.hidden = !answer;
    message.textContent = answer ? answer.error + (answer.rule ? ` (${answer.rule})` : "") : "";
    message.dataset.field = answer ? answer.field || "" : "";
    const control = answer && controls[answer.field];
    if (control) {
      $(control).setAttribute("aria-invalid", "true");
      $(control).focus();
    }
  }

  function showTokenField(needed) {
    $("#ask-token-field").hidden = !needed;
    $("#ask-token-help").hidden = !needed;
    if (model.topology) {
      $("#ask-token-command").textContent =
        `kubectl get secret ${model.topology.network}-api-token -o jsonpath='{.data.token}' | base64 -d`;
    }
  }

  // The token lives in this tab's sessionStorage (gone with the tab); storage may be off: then it is typed again.
  function remember(token) {
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (error) { /* not kept */ }
  }

  function remembered() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (error) { return ""; }
  }

  function explain(answer) {
    if (answer.verdict === undefined) return `added to agent ${answer.agent}, class ${answer.class.slice(0, 12)}`;
    if (answer.verdict === "equal") {
      const rules = answer.explanation.rules;
      return rules.length ? `rules used: ${rules.join(", ")}` : "the same term";
    }
    if (answer.verdict === "unequal") {
      const c = answer.counterexample;
      const at = Object.entries(c.point).map(([name, value]) => `${name} = ${value}`)
        .concat(Object.entries(c.functions || {}).map(([call, value]) => `${call} = ${value}`)).join(", ");
      return `counterexample at ${at || "any point"}: ${answer.lhs} = ${c.lhs}, ${answer.rhs} = ${c.rhs}`;
    }
    return "neither derived with these rules within the budget, nor refuted at any point tried";
  }

  function addAsk(answer) {
    const item = document.createElement("li");
    item.dataset.verdict = answer.verdict || "added";
    item.dataset.event = answer.event;
    const question = document.createElement("code");
    question.textContent = answer.verdict === undefined ? answer.term : `${answer.lhs} = ${answer.rhs}`;
    const verdict = document.createElement("span");
    verdict.className = "verdict";
    verdict.textContent = answer.verdict || "added";
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = explain(answer);
    const arrival = document.createElement("span");
    arrival.className = "arrival";
    item.append(question, verdict, detail, arrival);
    $("#asks").prepend(item);
    model.asks.unshift({ ...answer, held: null, arrival });
    for (const old of model.asks.splice(MAX_ASKS)) old.arrival.parentElement.remove();
    showArrival();
  }

  function showArrival() {
    // An agent holds an ask once its replica holds the dashboard's event of it (events arrive in order).
    const agents = Object.entries(model.agents);
    for (const entry of model.asks) {
      const held = agents.filter(([, agent]) => (agent.asks || 0) >= entry.event).length;
      if (held === entry.held) continue;
      entry.held = held;
      entry.arrival.dataset.held = held;
      entry.arrival.dataset.total = agents.length;
      entry.arrival.textContent = held === agents.length ? `held by every agent (${held})` : `held by ${held} of ${agents.length} agents`;
    }
    const newest = model.asks[0];
    if (!newest) return;
    for (const [id, agent] of agents) {
      const state = (agent.asks || 0) >= newest.event ? "held" : "waiting";
      const group = view.nodes[id].group;
      if (group.dataset.ask !== state) group.dataset.ask = state;
    }
  }

  function applyUpdate(update) {
    markOnce("agentnet-update-received");
    const started = performance.now();
    if (update.ask_token !== undefined) showTokenField(update.ask_token); // said in a connection's first update
    applyAgents(update.agents);
    showArrival();
    applyConvergence(update);
    applyTimeline(update.timeline);
    if (update.metrics) applyMetrics(update.metrics);
    model.updates += 1;
    markOnce("agentnet-update-applied");
    const applied = performance.now();
    requestAnimationFrame(() => requestAnimationFrame(() => { // the second runs after the first's paint
      model.timings.push({ apply: applied - started, painted: performance.now() - started });
      model.timings.splice(0, Math.max(0, model.timings.length - TIMINGS));
    }));
    if (model.graphDrawnAt === null) {
      // Two animation frames: the first paints this update, the second runs after that paint.
      requestAnimationFrame(() => requestAnimationFrame(() => {
        if (model.graphDrawnAt !== null) return;
        markOnce("agentnet-graph-drawn");
        model.graphDrawnAt = performance.now();
      }));
    }
  }

  // --- the stream -------------------------------------------------------------------------------------------

  function connect() {
    markOnce("agentnet-script-run");
    const stream = new EventSource("events");
    const status = $("#connection");
    stream.addEventListener("open", () => {
      markOnce("agentnet-stream-open");
      status.dataset.connected = "true";
      status.textContent = "live";
    });
    stream.addEventListener("error", () => { status.dataset.connected = "false"; status.textContent = "reconnecting…"; });
    stream.addEventListener("topology", (message) => buildTopology(JSON.parse(message.data)));
    stream.addEventListener("update", (message) => applyUpdate(JSON.parse(message.data)));
  }

  $("#ask-token").value = remembered();
  $("#ask-form").addEventListener("submit", ask);
  $("#show-chatter").addEventListener("change", (event) => {
    $("#timeline").classList.toggle("hide-chatter", !event.target.checked);
  });
  connect();
})();
