// The inftd console: lists agents, shows one live over its WebSocket, signs in with an
// injected wallet (Sign-In with Ethereum). Plain DOM, no build step, no third-party code.
// Every piece of data reaches the page as text (textContent / text nodes), never as HTML.
(() => {
  "use strict";

  const SESSION_KEY = "inftd.session"; // sessionStorage: the sign-in ends with the tab
  const PAGE_SIZE = 50; // agents per page of the list
  const RECONNECT_MIN = 500; // ms before the first reconnect; doubles up to RECONNECT_MAX
  const RECONNECT_MAX = 10000;
  const REFETCH_DELAY = 100; // ms: a burst of events costs one re-fetch of the agent
  const STATUS_EVERY = 15000; // ms between refreshes of the status line
  const EVENTS_SHOWN = 50; // newest events kept in the log
  const FLASH_MS = 1500; // how long a changed value stays highlighted

  const $ = (id) => document.getElementById(id);

  // Build an element; children are nodes or values shown as text.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    node.append(...children.map((c) => (c instanceof Node ? c : String(c ?? ""))));
    return node;
  }

  function shortAddress(address) {
    return address.length > 12 ? `${address.slice(0, 6)}…${address.slice(-4)}` : address;
  }

  function when(iso) {
    if (!iso) return "–";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = !message;
  }

  // ---- the session (a sign-in token, kept for this tab only) ----

  const session = { token: null, address: null, expiresAt: null };

  function loadSession() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      if (saved && Date.parse(saved.expiresAt) > Date.now()) Object.assign(session, saved);
    } catch (_) {
      sessionStorage.removeItem(SESSION_KEY);
    }
  }

  function setSession(login) {
    Object.assign(session, login);
    if (login.token) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    else sessionStorage.removeItem(SESSION_KEY);
    renderWallet();
  }

  // The sign-in token while it is valid; an expired one is dropped, so a reconnecting
  // socket falls back to the public events instead of being refused again and again.
  function currentToken() {
    if (session.token && !(Date.parse(session.expiresAt) > Date.now())) {
      setSession({ token: null, address: null, expiresAt: null });
      renderOwnerView();
    }
    return session.token;
  }

  function signedInAs(address) {
    return Boolean(session.token && address && session.address.toLowerCase() === address.toLowerCase());
  }

  // ---- the API ----

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, { method = "GET", body, auth = false } = {}) {
    const headers = {};
    if (auth && currentToken()) headers.Authorization = `Bearer ${session.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(response.status, error.code, error.message || `HTTP ${response.status}`);
    }
    return data;
  }

  // ---- the status line ----

  async function refreshStatus() {
    try {
      const status = await api("/v1/status");
      const indexer = status.indexer;
      const parts = [
        `chain ${status.chain.chainId}`,
        `head ${status.chain.headBlock ?? "?"}`,
        `indexed ${indexer.indexedBlock ?? "–"}`,
        `inftd ${status.version}`,
      ];
      if (indexer.halted) parts.push(`indexer halted: ${indexer.halted}`);
      $("status").textContent = parts.join(" · ");
    } catch (error) {
      $("status").textContent = `API unavailable (${error.message})`;
    }
  }

  // ---- the list of agents ----

  const list = { next: null, rows: new Map() };

  function summaryRow(agent) {
    const id = String(agent.packageTokenId);
    const link = el("a", { href: `#/agents/${id}` }, `#${id}`);
    const row = el(
      "tr",
      { "data-token": id },
      el("td", {}, link),
      el("td", {}, agent.packageType),
      el("td", { title: agent.owner }, el("code", {}, shortAddress(agent.owner))),
      el("td", { class: "num", "data-field": "availableCredits" }, agent.availableCredits),
      el("td", { class: "num" }, agent.level),
      el("td", {}, when(agent.lastActivity)),
    );
    row.addEventListener("click", (event) => {
      if (event.target !== link) location.hash = `#/agents/${id}`;
    });
    if (id === view.id) row.classList.add("selected");
    return row;
  }

  function upsertRow(agent) {
    const id = String(agent.packageTokenId);
    const row = summaryRow(agent);
    const old = list.rows.get(id);
    if (old) old.replaceWith(row);
    else if (list.rows.size === 0 || list.next === null) $("agents").tBodies[0].append(row);
    else return; // not loaded yet: it shows when its page is
    list.rows.set(id, row);
    $("agents-empty").hidden = true;
  }

  async function loadAgents(reset) {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (!reset && list.next !== null) params.set("after", String(list.next));
    try {
      const page = await api(`/v1/agents?${params}`);
      if (reset) {
        $("agents").tBodies[0].replaceChildren();
        list.rows.clear();
      }
      list.next = null; // appended rows below are loaded ones
      for (const agent of page.agents) upsertRow(agent);
      list.next = page.next;
      $("more").hidden = page.next === null;
      $("agents-empty").hidden = list.rows.size > 0;
    } catch (error) {
      showError(`Could not list the agents: ${error.message}`);
    }
  }

  // ---- one agent, live ----

  const view = {
    id: null, // token id (a string, as in the URL) of the open agent
    agent: null,
    socket: null,
    lastSeq: null, // resume point: the newest seq this view has taken in
    loggedSeq: 0, // newest event shown in the log
    retry: RECONNECT_MIN,
    reconnectTimer: null,
    refetchTimer: null,
    preferencesDirty: false,
  };

  function setField(name, value) {
    for (const node of $("agent").querySelectorAll(`[data-field="${name}"]`)) {
      node.textContent = String(value ?? "–");
    }
  }

  function flash(node) {
    node.classList.remove("flash");
    void node.offsetWidth; // restart the animation
    node.classList.add("flash");
    setTimeout(() => node.classList.remove("flash"), FLASH_MS);
  }

  function renderGenerations(items) {
    const rows = items.map((g) =>
      el(
        "li",
        {},
        el("span", { class: "kind" }, g.kind),
        " ",
        el("q", {}, g.prompt),
        el(
          "div",
          { class: "muted" },
          `${when(g.createdAt)} · ${g.provider || "provider ?"}`,
          g.contentUri ? " · " : "",
          g.contentUri ? el("code", {}, g.contentUri) : "",
        ),
      ),
    );
    $("generations").replaceChildren(...rows);
    $("generations-empty").hidden = rows.length > 0;
  }

  function renderPreferences(preferences) {
    const text = JSON.stringify(preferences, null, 2);
    $("preferences").textContent = text;
    if (!view.preferencesDirty) $("preferences-input").value = text;
  }

  function renderOwnerView() {
    const owner = Boolean(view.agent && signedInAs(view.agent.owner));
    $("owner-badge").hidden = !owner;
    $("preferences-form").hidden = !owner;
  }

  function render(agent) {
    const before = view.agent;
    view.agent = agent;
    $("agent-title").textContent = `Agent #${agent.packageTokenId}`;
    for (const name of ["availableCredits", "totalCredits", "usedCredits", "reservedCredits"]) {
      setField(name, agent[name]);
    }
    for (const name of ["owner", "packageType", "level", "agentMetadata"]) {
      setField(name, agent[name] === "" ? "–" : agent[name]);
    }
    setField("lastActivity", when(agent.lastActivity));
    if (before && before.availableCredits !== agent.availableCredits) flash($("credits"));
    renderGenerations(agent.generatedContent || []);
    renderPreferences(agent.preferences || {});
    renderOwnerView();
    upsertRow(agent);
  }

  function setLive(state) {
    const badge = $("live");
    badge.dataset.state = state;
    badge.textContent = state;
  }

  function logEvent(message) {
    if (message.seq <= view.loggedSeq) return; // replayed after a reconnect: shown already
    view.loggedSeq = message.seq;
    const data = JSON.stringify(message.data);
    const item = el(
      "li",
      { "data-seq": String(message.seq) },
      el("span", { class: "event-name" }, message.event),
      ` seq ${message.seq} · ${when(message.at)} `,
      el("code", {}, data.length > 200 ? `${data.slice(0, 200)}…` : data),
    );
    const log = $("events");
    log.prepend(item);
    while (log.children.length > EVENTS_SHOWN) log.lastElementChild.remove();
    $("events-empty").hidden = true;
  }

  async function refetch() {
    const id = view.id;
    try {
      const agent = await api(`/v1/agents/${id}`);
      if (view.id === id) render(agent);
    } catch (error) {
      if (view.id === id) showError(`Could not load agent #${id}: ${error.message}`);
    }
  }

  function scheduleRefetch() {
    clearTimeout(view.refetchTimer);
    view.refetchTimer = setTimeout(refetch, REFETCH_DELAY);
  }

  function onMessage(message) {
    if (message.type === "snapshot") {
      if (String(message.tokenId) === view.id) render(message.agent);
      if (view.lastSeq === null) view.lastSeq = message.seq; // later: resume from events
    } else if (message.type === "event") {
      view.lastSeq = Math.max(view.lastSeq ?? 0, message.seq);
      logEvent(message);
      scheduleRefetch(); // credits.changed, generation.*, mint.*: the agent is re-read
    } else if (message.type === "error") {
      showError(message.message);
    }
  }

  function socketUrl() {
    const params = new URLSearchParams();
    if (view.lastSeq !== null) params.set("since", String(view.lastSeq));
    if (currentToken()) params.set("access_token", session.token); // private events too
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = params.toString();
    return `${scheme}//${location.host}/v1/agents/${view.id}/ws${query ? `?${query}` : ""}`;
  }

  function connect() {
    view.reconnectTimer = null;
    const socket = new WebSocket(socketUrl());
    view.socket = socket;
    setLive("connecting");
    socket.addEventListener("open", () => {
      view.retry = RECONNECT_MIN;
      setLive("live");
    });
    socket.addEventListener("message", (event) => {
      if (view.socket === socket) onMessage(JSON.parse(event.data));
    });
    socket.addEventListener("close", () => {
      if (view.socket !== socket) return; // closed on purpose
      view.socket = null;
      setLive("reconnecting");
      view.reconnectTimer = setTimeout(connect, view.retry);
      view.retry = Math.min(view.retry * 2, RECONNECT_MAX);
    });
  }

  function disconnect() {
    clearTimeout(view.reconnectTimer);
    view.reconnectTimer = null;
    const socket = view.socket;
    view.socket = null;
    if (socket) socket.close();
    setLive("offline");
  }

  function reconnect() {
    if (view.id === null) return;
    disconnect();
    connect();
  }

  function resetAgentView() {
    view.agent = null;
    view.lastSeq = null;
    view.loggedSeq = 0;
    view.retry = RECONNECT_MIN;
    view.preferencesDirty = false;
    clearTimeout(view.refetchTimer);
    $("events").replaceChildren();
    $("events-empty").hidden = false;
    $("preferences-result").textContent = "";
  }

  function markSelected() {
    for (const [id, row] of list.rows) row.classList.toggle("selected", id === view.id);
  }

  async function openAgent(id) {
    if (view.id === id) return;
    closeAgent();
    view.id = id;
    markSelected();
    $("agent").hidden = false;
    $("agent-title").textContent = `Agent #${id}`;
    try {
      render(await api(`/v1/agents/${id}`));
    } catch (error) {
      if (view.id === id) showError(`Could not load agent #${id}: ${error.message}`);
      return;
    }
    if (view.id === id) connect();
  }

  function closeAgent() {
    disconnect();
    resetAgentView();
    view.id = null;
    $("agent").hidden = true;
    markSelected();
  }

  function route() {
    showError("");
    const match = /^#\/agents\/([0-9]{1,78})$/.exec(location.hash);
    if (match) openAgent(match[1]);
    else closeAgent();
  }

  // ---- owner actions ----

  async function savePreferences(event) {
    event.preventDefault();
    const result = $("preferences-result");
    let preferences;
    try {
      preferences = JSON.parse($("preferences-input").value);
    } catch (error) {
      result.textContent = `Not JSON: ${error.message}`;
      return;
    }
    try {
      const id = view.id;
      await api(`/v1/agents/${id}/preferences`, { method: "PUT", body: preferences, auth: true });
      view.preferencesDirty = false;
      result.textContent = "Saved.";
      await refetch();
    } catch (error) {
      if (error.status === 401) setSession({ token: null, address: null, expiresAt: null });
      result.textContent = `Not saved: ${error.message}`;
    }
  }

  // ---- the wallet (an injected EIP-1193 provider such as window.ethereum) ----

  function utf8Hex(text) {
    const bytes = new TextEncoder().encode(text);
    return `0x${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  async function signIn() {
    const wallet = window.ethereum;
    const button = $("sign-in");
    button.disabled = true;
    try {
      const [address] = await wallet.request({ method: "eth_requestAccounts" });
      const issued = await api(`/v1/auth/nonce?${new URLSearchParams({ address })}`);
      const signature = await wallet.request({
        method: "personal_sign",
        params: [utf8Hex(issued.message), address],
      });
      const body = { message: issued.message, signature };
      setSession(await api("/v1/auth/login", { method: "POST", body }));
      showError("");
      renderOwnerView();
      reconnect(); // the socket now carries the token: the owner's private events too
    } catch (error) {
      showError(`Sign-in failed: ${error.message || error}`);
    } finally {
      button.disabled = false;
    }
  }

  function signOut() {
    setSession({ token: null, address: null, expiresAt: null });
    renderOwnerView();
    reconnect();
  }

  function renderWallet() {
    const signedIn = Boolean(session.token);
    $("sign-in").hidden = signedIn || !window.ethereum;
    $("signed-in").hidden = !signedIn;
    $("address").textContent = session.address || "";
  }

  // ---- start ----

  function start() {
    loadSession();
    renderWallet();
    $("sign-in").addEventListener("click", signIn);
    $("sign-out").addEventListener("click", signOut);
    $("refresh").addEventListener("click", () => loadAgents(true));
    $("more").addEventListener("click", () => loadAgents(false));
    $("preferences-form").addEventListener("submit", savePreferences);
    $("preferences-input").addEventListener("input", () => {
      view.preferencesDirty = true;
    });
    window.addEventListener("hashchange", route);
    window.addEventListener("ethereum#initialized", renderWallet); // wallets that inject late
    refreshStatus();
    setInterval(refreshStatus, STATUS_EVERY);
    loadAgents(true).then(route);
  }

  start();
})();
