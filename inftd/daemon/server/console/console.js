// The inftd console: lists agents and shows one live over its WebSocket; its owner signs in
// (an injected wallet with Sign-In with Ethereum, or under `inftd dev` a demo account),
// buys and tops up, asks for text and images and watches them stream and mint, rates
// them, writes to other agents, lends its styles, edits its preferences.
// Plain DOM, no build step, no third-party code. Every piece of data reaches the page as
// text (textContent / text nodes), never as HTML.
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
  const MINTS_ASKED = 10; // newest succeeded generations whose mint is followed
  // Function selectors of the package contract (keccak256 of the signature, first 4 bytes);
  // tests/daemon/server/test_console.py checks them against the ABI.
  const PURCHASE = "0x237a5a75"; // purchasePackage(uint8)
  const TOP_UP = "0x2aea58b2"; // addCredits(uint256)
  const TEMPLATE = "local"; // the offline template provider: no model behind it

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

  function providerName(name) {
    return name === TEMPLATE ? "template (no model)" : name || "provider ?";
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = !message;
  }

  function word(hex) {
    return hex.replace(/^0x/, "").padStart(64, "0");
  }

  // ---- the session (a sign-in token, kept for this tab only) ----

  const session = { token: null, address: null, expiresAt: null, demo: null };
  const NO_SESSION = { token: null, address: null, expiresAt: null, demo: null };

  function loadSession() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      if (saved && Date.parse(saved.expiresAt) > Date.now()) Object.assign(session, saved);
    } catch (_) {
      sessionStorage.removeItem(SESSION_KEY);
    }
  }

  function setSession(login) {
    Object.assign(session, NO_SESSION, login);
    if (login.token) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    else sessionStorage.removeItem(SESSION_KEY);
    renderWallet();
  }

  // The sign-in token while it is valid; an expired one is dropped, so a reconnecting
  // socket falls back to the public events instead of being refused again and again.
  function currentToken() {
    if (session.token && !(Date.parse(session.expiresAt) > Date.now())) {
      setSession(NO_SESSION);
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

  async function api(path, { method = "GET", body, auth = false, headers = {} } = {}) {
    const sent = { ...headers };
    // An owner's call is never sent signed out (a sign-out can land while a refresh waits).
    if (auth && !currentToken()) throw new ApiError(401, "signed_out", "sign in first");
    if (auth) sent.Authorization = `Bearer ${session.token}`;
    if (body !== undefined) sent["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = response.status === 204 ? {} : await response.json().catch(() => null);
    if (!response.ok) {
      const error = (data && data.error) || {};
      if (response.status === 401 && auth) setSession(NO_SESSION);
      throw new ApiError(response.status, error.code, error.message || `HTTP ${response.status}`);
    }
    return data;
  }

  // ---- what the daemon offers: status, providers, packages, demo accounts ----

  const daemon = { packageAddress: null, providers: [], packages: [], creditPriceWei: "0", demo: [] };

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
      daemon.packageAddress = status.deployment.packageAddress;
      const providers = Object.keys(status.providers || {});
      if (providers.join() !== daemon.providers.join()) {
        daemon.providers = providers;
        renderProviders();
      }
    } catch (error) {
      $("status").textContent = `API unavailable (${error.message})`;
    }
  }

  function renderProviders() {
    const options = daemon.providers.map((name) => el("option", { value: name }, providerName(name)));
    $("generate-provider").replaceChildren(el("option", { value: "" }, "best (routed)"), ...options);
    $("template-note").hidden = !(daemon.providers.length > 0 && daemon.providers.every((n) => n === TEMPLATE));
  }

  async function loadOffers() {
    try {
      const offered = await api("/v1/packages");
      daemon.packages = offered.packages.filter((p) => p.active);
      daemon.creditPriceWei = offered.creditPriceWei;
      $("buy-package").replaceChildren(
        ...daemon.packages.map((p) =>
          el("option", { value: String(p.packageType) }, `${p.name}: ${p.credits} credits`),
        ),
      );
    } catch (_) {
      daemon.packages = [];
    }
    try {
      daemon.demo = (await api("/v1/dev/accounts")).accounts; // inftd dev only
    } catch (_) {
      daemon.demo = []; // a daemon on a real chain has no demo accounts
    }
    renderWallet();
  }

  // ---- on chain: a wallet's transaction, or under inftd dev a demo account's ----

  async function sendTransaction(data, valueWei, devPath, devBody) {
    if (session.demo) {
      return api(devPath, { method: "POST", body: { account: session.demo, ...devBody } });
    }
    const wallet = window.ethereum;
    if (!wallet || !daemon.packageAddress) throw new Error("no wallet to send it with");
    const value = `0x${BigInt(valueWei).toString(16)}`;
    const tx = { from: session.address, to: daemon.packageAddress, data, value };
    return { txHash: await wallet.request({ method: "eth_sendTransaction", params: [tx] }) };
  }

  async function buy(event) {
    event.preventDefault();
    const kind = Number($("buy-package").value);
    const offer = daemon.packages.find((p) => p.packageType === kind);
    const result = $("buy-result");
    if (!offer) return;
    try {
      const data = PURCHASE + word(kind.toString(16));
      const sent = await sendTransaction(data, offer.priceWei, "/v1/dev/buy", { packageType: kind });
      result.textContent = `Bought: ${shortAddress(sent.txHash)}; the agent appears once indexed.`;
      setTimeout(() => loadAgents(true), 1000);
    } catch (error) {
      result.textContent = `Not bought: ${error.message || error}`;
    }
  }

  async function topUp(event) {
    event.preventDefault();
    const credits = Number($("top-up-credits").value);
    const result = $("top-up-result");
    try {
      const value = (BigInt(daemon.creditPriceWei) * BigInt(credits)).toString();
      const data = TOP_UP + word(BigInt(view.id).toString(16));
      const body = { tokenId: Number(view.id), credits };
      const sent = await sendTransaction(data, value, "/v1/dev/top-up", body);
      result.textContent = `Sent: ${shortAddress(sent.txHash)}`;
    } catch (error) {
      result.textContent = `Not sent: ${error.message || error}`;
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
    ownerTimer: null,
    preferencesDirty: false,
    streams: new Map(), // generation id -> the text streamed so far
    mints: new Map(), // generation id -> its mint, as last asked
    rated: new Map(), // generation id -> the owner's rating
    owned: [], // the owner's view of the generations
  };

  function isOwner() {
    return Boolean(view.agent && signedInAs(view.agent.owner));
  }

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

  // The public view: the agent's recent succeeded generations.
  function renderPublicGenerations(items) {
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
          `${when(g.createdAt)} · ${providerName(g.provider)}`,
          g.contentUri ? " · " : "",
          g.contentUri ? el("code", {}, g.contentUri) : "",
        ),
      ),
    );
    $("generations").replaceChildren(...rows);
    $("generations-empty").hidden = rows.length > 0;
  }

  function contentPath(g) {
    return g.contentHash ? `/v1/content/${g.contentHash.replace(/^0x/, "")}` : null;
  }

  function mintLine(g) {
    const mint = view.mints.get(g.id);
    if (!mint) return el("div", { class: "mint muted", "data-mint": "none" }, "mint: waiting for the relayer");
    return el(
      "div",
      { class: "mint", "data-mint": mint.status },
      `mint: ${mint.status}`,
      mint.tokenId !== null && mint.tokenId !== undefined ? ` · NFT #${mint.tokenId}` : "",
      mint.txHash ? " · tx " : "",
      mint.txHash ? el("code", { title: mint.txHash }, shortAddress(mint.txHash)) : "",
    );
  }

  function rateForm(g) {
    const rating = view.rated.get(g.id);
    if (rating) return el("div", { class: "rated" }, `rated ${rating}/5`);
    const form = el("form", { class: "rate inline", "data-rate": g.id });
    const tags = el("input", { type: "text", maxlength: "48", placeholder: "tags, comma separated", "aria-label": "tags" });
    form.append("Rate ");
    for (let stars = 1; stars <= 5; stars++) {
      const button = el("button", { type: "button", "data-rating": String(stars), title: `${stars} of 5` }, "★".repeat(stars));
      button.addEventListener("click", () => rate(g.id, stars, tags.value));
      form.append(button);
    }
    form.append(tags);
    return form;
  }

  function ownedItem(g) {
    const stream = view.streams.get(g.id) || "";
    const item = el(
      "li",
      { "data-generation": g.id, "data-status": g.status },
      el("span", { class: "kind" }, g.kind),
      " ",
      el("span", { class: `status ${g.status}` }, g.status),
      " ",
      el("q", {}, g.prompt),
      el(
        "div",
        { class: "muted" },
        `${when(g.createdAt)} · ${providerName(g.provider)}`,
        g.model ? ` · ${g.model}` : "",
        g.costUsd !== null && g.costUsd !== undefined ? ` · $${Number(g.costUsd).toFixed(4)}` : "",
        g.options && g.options.strategy ? ` · ${g.options.strategy}` : "",
      ),
    );
    if (g.status === "running" || g.status === "queued" || (stream && g.status !== "succeeded")) {
      item.append(el("pre", { class: "stream", "data-stream": g.id }, stream));
    }
    if (g.error) item.append(el("div", { class: "error-line" }, g.error));
    const path = contentPath(g);
    if (g.status === "succeeded" && path) {
      if (g.kind === "image") {
        item.append(el("img", { src: path, alt: `generated: ${g.prompt}`, class: "made", "data-content": g.id }));
      } else {
        const text = el("pre", { class: "made", "data-content": g.id }, stream || "…");
        item.append(text);
        fetch(path)
          .then((r) => (r.ok ? r.text() : Promise.reject(new Error(`HTTP ${r.status}`))))
          .then((body) => { text.textContent = body; })
          .catch((error) => { text.textContent = `(content unavailable: ${error.message})`; });
      }
      item.append(mintLine(g), rateForm(g));
    }
    return item;
  }

  function renderOwnedGenerations() {
    const rows = view.owned.map(ownedItem);
    $("generations").replaceChildren(...rows);
    $("generations-empty").hidden = rows.length > 0;
  }

  function renderPreferences(preferences) {
    const text = JSON.stringify(preferences, null, 2);
    $("preferences").textContent = text;
    if (!view.preferencesDirty) $("preferences-input").value = text;
  }

  function renderOwnerView() {
    const owner = isOwner();
    $("owner-badge").hidden = !owner;
    $("preferences-form").hidden = !owner;
    $("generate-form").hidden = !owner;
    $("messages-section").hidden = !owner;
    $("grant-form").hidden = !owner;
    $("top-up-form").hidden = !(session.token && (session.demo || window.ethereum));
    if (owner) scheduleOwnerRefresh();
    else if (view.agent) renderPublicGenerations(view.agent.generatedContent || []);
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
    if (!isOwner()) renderPublicGenerations(agent.generatedContent || []);
    renderPreferences(agent.preferences || {});
    renderOwnerView();
    upsertRow(agent);
  }

  // ---- the owner's view: generations with their mints, learning, messages ----

  async function refreshOwned() {
    const id = view.id;
    if (!isOwner()) return;
    try {
      const [page, learned] = await Promise.all([
        api(`/v1/agents/${id}/generations`, { auth: true }),
        api(`/v1/agents/${id}/learning`),
      ]);
      if (view.id !== id || !isOwner()) return;
      view.owned = page.generations;
      for (const entry of learned.entries) {
        if (entry.generationId) view.rated.set(entry.generationId, entry.rating);
      }
      renderLearned(learned);
      await refreshMints(id);
      if (view.id === id) renderOwnedGenerations();
    } catch (error) {
      if (view.id === id && isOwner()) showError(`Could not load the agent's generations: ${error.message}`);
    }
    if (view.id === id && isOwner()) refreshInbox(id);
  }

  async function refreshMints(id) {
    const open = view.owned
      .filter((g) => g.status === "succeeded" && (view.mints.get(g.id) || {}).status !== "confirmed")
      .slice(0, MINTS_ASKED);
    await Promise.all(
      open.map(async (g) => {
        if (view.id !== id || !isOwner()) return;
        try {
          const full = await api(`/v1/generations/${g.id}`, { auth: true });
          if (view.id === id && full.mint) view.mints.set(g.id, full.mint);
        } catch (_) {
          // a reorg took it, or the sign-in ended: the next refresh tells
        }
      }),
    );
  }

  function renderLearned(learned) {
    $("learned-level").textContent = String(learned.level);
    const rows = [];
    for (const [dimension, weights] of Object.entries(learned.evolution || {})) {
      for (const w of weights) {
        rows.push(el("li", { "data-dimension": dimension }, `${dimension}: `, el("strong", {}, w.value), ` ${Number(w.weight).toFixed(2)}`));
      }
    }
    $("learned").replaceChildren(...rows);
    $("learned-section").hidden = rows.length === 0;
  }

  async function refreshInbox(id) {
    try {
      const box = await api(`/v1/agents/${id}/messages`, { auth: true });
      if (view.id !== id) return;
      const rows = box.messages.map((m) =>
        el("li", { "data-message": String(m.id) }, el("strong", {}, `from #${m.from}`), ` · ${when(m.createdAt)} · `, m.body.text ?? JSON.stringify(m.body)),
      );
      $("inbox").replaceChildren(...rows);
      $("inbox-empty").hidden = rows.length > 0;
    } catch (_) {
      // not the owner any more: the owner view goes with the next render
    }
  }

  async function refreshGrants() {
    const id = view.id;
    try {
      const grants = await api(`/v1/agents/${id}/collaborators`);
      if (view.id !== id) return;
      const rows = [
        ...grants.granted.map((g) => grantRow(`lends its styles to #${g.grantee}`, g.grantee)),
        ...grants.received.map((g) => grantRow(`borrows the styles of #${g.granter}`, null)),
      ];
      $("grants").replaceChildren(...rows);
      $("grants-empty").hidden = rows.length > 0;
    } catch (_) {
      // shown again on the next event
    }
  }

  function grantRow(text, revocable) {
    const row = el("li", {}, text);
    if (revocable !== null && isOwner()) {
      const button = el("button", { type: "button", class: "link", "data-revoke": String(revocable) }, "revoke");
      button.addEventListener("click", () => revoke(revocable));
      row.append(" ", button);
    }
    return row;
  }

  function scheduleOwnerRefresh() {
    clearTimeout(view.ownerTimer);
    view.ownerTimer = setTimeout(() => {
      refreshOwned();
      refreshGrants();
    }, REFETCH_DELAY);
  }

  // A chunk of a running generation's text: shown as it comes, before the agent re-reads.
  function onProgress(data) {
    if (data.stage !== "chunk" || typeof data.text !== "string") return;
    const text = (view.streams.get(data.id) || "") + data.text;
    view.streams.set(data.id, text);
    const node = document.querySelector(`[data-stream="${CSS.escape(data.id)}"]`);
    if (node) node.textContent = text;
  }

  // ---- the socket ----

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
      if (message.event === "generation.progress") {
        onProgress(message.data); // many a second: streamed, not logged
        return;
      }
      logEvent(message);
      scheduleRefetch(); // credits.changed, generation.*, mint.*: the agent is re-read
      if (isOwner()) scheduleOwnerRefresh();
      else if (message.event.startsWith("collaboration.")) refreshGrants();
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
    view.streams.clear();
    view.mints.clear();
    view.rated.clear();
    view.owned = [];
    clearTimeout(view.refetchTimer);
    clearTimeout(view.ownerTimer);
    for (const id of ["events", "generations", "inbox", "grants", "learned"]) $(id).replaceChildren();
    $("events-empty").hidden = false;
    $("learned-section").hidden = true;
    for (const id of ["preferences-result", "generate-result", "message-result", "grant-result", "top-up-result"]) {
      $(id).textContent = "";
    }
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
    refreshGrants();
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
      result.textContent = `Not saved: ${error.message}`;
    }
  }

  async function generate(event) {
    event.preventDefault();
    const result = $("generate-result");
    const options = {
      strategy: $("generate-strategy").value,
      quality: $("generate-quality").value,
    };
    if ($("generate-provider").value) options.provider = $("generate-provider").value;
    if ($("generate-style").value.trim()) options.style = $("generate-style").value.trim();
    const body = { kind: $("generate-kind").value, prompt: $("generate-prompt").value, options };
    try {
      const made = await api(`/v1/agents/${view.id}/generations`, {
        method: "POST",
        body,
        auth: true,
        headers: { "Idempotency-Key": crypto.randomUUID() },
      });
      result.textContent = "Asked: it shows below as it runs.";
      view.owned = [made, ...view.owned.filter((g) => g.id !== made.id)];
      renderOwnedGenerations();
    } catch (error) {
      result.textContent = `Not asked: ${error.message}`;
    }
  }

  async function rate(generationId, rating, tagText) {
    const tags = tagText.split(",").map((t) => t.trim()).filter(Boolean);
    try {
      await api(`/v1/generations/${generationId}/feedback`, {
        method: "POST",
        body: { rating, tags },
        auth: true,
      });
      view.rated.set(generationId, rating);
      renderOwnedGenerations();
      scheduleOwnerRefresh();
    } catch (error) {
      showError(`Not rated: ${error.message}`);
    }
  }

  async function sendMessage(event) {
    event.preventDefault();
    const result = $("message-result");
    const body = { to: Number($("message-to").value), text: $("message-text").value };
    try {
      await api(`/v1/agents/${view.id}/messages`, { method: "POST", body, auth: true });
      result.textContent = `Sent to #${body.to}.`;
      $("message-text").value = "";
    } catch (error) {
      result.textContent = `Not sent: ${error.message}`;
    }
  }

  async function grant(event) {
    event.preventDefault();
    const result = $("grant-result");
    const tokenId = Number($("grant-to").value);
    try {
      await api(`/v1/agents/${view.id}/collaborators`, { method: "POST", body: { tokenId }, auth: true });
      result.textContent = `Granted to #${tokenId}.`;
      refreshGrants();
    } catch (error) {
      result.textContent = `Not granted: ${error.message}`;
    }
  }

  async function revoke(grantee) {
    try {
      await api(`/v1/agents/${view.id}/collaborators/${grantee}`, { method: "DELETE", auth: true });
      refreshGrants();
    } catch (error) {
      showError(`Not revoked: ${error.message}`);
    }
  }

  // ---- signing in: an injected EIP-1193 wallet, or a demo account under inftd dev ----

  function utf8Hex(text) {
    const bytes = new TextEncoder().encode(text);
    return `0x${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  function signedIn(login, demo) {
    setSession({ ...login, demo });
    showError("");
    renderOwnerView();
    reconnect(); // the socket now carries the token: the owner's private events too
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
      signedIn(await api("/v1/auth/login", { method: "POST", body }), null);
    } catch (error) {
      showError(`Sign-in failed: ${error.message || error}`);
    } finally {
      button.disabled = false;
    }
  }

  async function signInAsDemo(name) {
    try {
      signedIn(await api("/v1/dev/sign-in", { method: "POST", body: { account: name } }), name);
    } catch (error) {
      showError(`Sign-in failed: ${error.message}`);
    }
  }

  function signOut() {
    setSession(NO_SESSION);
    renderOwnerView();
    if (view.agent) renderPublicGenerations(view.agent.generatedContent || []);
    reconnect();
  }

  function renderWallet() {
    const signedInNow = Boolean(session.token);
    $("sign-in").hidden = signedInNow || !window.ethereum;
    const demo = $("demo-accounts");
    demo.hidden = signedInNow || daemon.demo.length === 0;
    demo.replaceChildren(
      el("span", { class: "muted" }, "Demo (inftd dev):"),
      ...daemon.demo.map((account) => {
        const button = el("button", { type: "button", "data-account": account.name, title: account.address }, `Sign in as ${account.name}`);
        button.addEventListener("click", () => signInAsDemo(account.name));
        return button;
      }),
    );
    $("signed-in").hidden = !signedInNow;
    $("address").textContent = session.address || "";
    $("signed-as").textContent = session.demo ? `(demo ${session.demo})` : "";
    $("buy-form").hidden = !(signedInNow && (session.demo || window.ethereum) && daemon.packages.length);
  }

  // ---- start ----

  function start() {
    loadSession();
    renderWallet();
    $("sign-in").addEventListener("click", signIn);
    $("sign-out").addEventListener("click", signOut);
    $("refresh").addEventListener("click", () => loadAgents(true));
    $("more").addEventListener("click", () => loadAgents(false));
    $("buy-form").addEventListener("submit", buy);
    $("top-up-form").addEventListener("submit", topUp);
    $("generate-form").addEventListener("submit", generate);
    $("message-form").addEventListener("submit", sendMessage);
    $("grant-form").addEventListener("submit", grant);
    $("preferences-form").addEventListener("submit", savePreferences);
    $("preferences-input").addEventListener("input", () => {
      view.preferencesDirty = true;
    });
    window.addEventListener("hashchange", route);
    window.addEventListener("ethereum#initialized", renderWallet); // wallets that inject late
    refreshStatus();
    setInterval(refreshStatus, STATUS_EVERY);
    loadOffers();
    loadAgents(true).then(route);
  }

  start();
})();
