// The inspector page: the live sessions, and one session as it happens.
//
// Plain JS, no build step, nothing from outside the server. Every API call goes through
// `api()`, which sends the key (when one was given) as `Authorization: Bearer` and, on a 401,
// asks for a key and tries again. The key lives in memory and sessionStorage (this tab only),
// never in a URL. The event stream is read with fetch() and parsed here, since EventSource
// cannot send a header. Text from the server only ever reaches the page through textContent.
"use strict";

(() => {
  const LIST_EVERY_MS = 3000;
  const RECONNECT_MS = 1500;
  const KEY_STORAGE = "realtime-trio.inspector.key";

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // -- the key -----------------------------------------------------------------------------

  let apiKey = readStoredKey();
  let keyWanted = null; // a promise of the next key entered, while the form is shown

  function readStoredKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE);
    } catch {
      return null; // storage disabled: the key stays in memory only
    }
  }

  function storeKey(key) {
    apiKey = key;
    try {
      if (key === null) sessionStorage.removeItem(KEY_STORAGE);
      else sessionStorage.setItem(KEY_STORAGE, key);
    } catch {
      // memory only
    }
    $("forget-key").hidden = key === null;
  }

  // Show the key form; resolves once a key is submitted. Concurrent callers share one form.
  function askForKey(refused) {
    if (keyWanted === null) {
      keyWanted = new Promise((resolve) => {
        const form = $("login");
        const input = $("key");
        $("login-error").textContent = refused ? "The server refused that key." : "";
        form.hidden = false;
        input.value = "";
        input.focus();
        form.onsubmit = (event) => {
          event.preventDefault();
          const key = input.value.trim();
          if (!key) return;
          form.hidden = true;
          form.onsubmit = null;
          input.value = "";
          keyWanted = null;
          storeKey(key);
          resolve();
        };
      });
    }
    return keyWanted;
  }

  // fetch() relative to the page, with the key; a 401 asks for a key and tries again.
  async function api(path, { signal, accept = "application/json" } = {}) {
    for (;;) {
      const headers = { Accept: accept };
      const sent = apiKey;
      if (sent !== null) headers.Authorization = `Bearer ${sent}`;
      const response = await fetch(new URL(path, document.baseURI), {
        headers,
        signal,
        cache: "no-store",
        credentials: "omit",
      });
      if (response.status !== 401) return response;
      await response.body?.cancel();
      if (apiKey === sent) await askForKey(sent !== null);
      if (signal?.aborted) throw signal.reason;
    }
  }

  // -- Server-Sent Events over fetch -------------------------------------------------------

  // Each message's JSON object, in order, until the stream ends. Lines starting with `:` are
  // comments (keep-alives); fields other than `data` are not used by this server.
  async function* readEvents(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let data = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        const lines = buffer.split("\n");
        buffer = lines.pop();
        for (let line of lines) {
          if (line.endsWith("\r")) line = line.slice(0, -1);
          if (line === "") {
            if (data.length > 0) {
              const text = data.join("\n");
              data = [];
              try {
                yield JSON.parse(text);
              } catch (error) {
                console.warn("inspector: an event that is not JSON", text, error);
              }
            }
          } else if (!line.startsWith(":")) {
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            let value = colon < 0 ? "" : line.slice(colon + 1);
            if (value.startsWith(" ")) value = value.slice(1);
            if (field === "data") data.push(value);
          }
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  // -- small DOM helpers (text only, never markup) -----------------------------------------

  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function setStatus(text, kind = "") {
    const status = $("status");
    status.textContent = text;
    status.className = kind;
  }

  function formatTime(unixSeconds) {
    if (typeof unixSeconds !== "number") return "";
    return new Date(unixSeconds * 1000).toLocaleTimeString();
  }

  function pretty(value) {
    if (typeof value === "string") {
      try {
        return JSON.stringify(JSON.parse(value), null, 2);
      } catch {
        return value;
      }
    }
    return value === undefined ? "" : JSON.stringify(value, null, 2);
  }

  // An object as a list of `key: value`, nested keys joined with dots.
  function fillPairs(dl, object, prefix = "") {
    if (!prefix) dl.replaceChildren();
    for (const [key, value] of Object.entries(object ?? {})) {
      const name = prefix + key;
      if (value !== null && typeof value === "object" && !Array.isArray(value)) {
        fillPairs(dl, value, `${name}.`);
      } else {
        const shown = value === null ? "—" : Array.isArray(value) ? JSON.stringify(value) : value;
        dl.append(el("dt", "", name), el("dd", "", shown));
      }
    }
  }

  // -- the session list --------------------------------------------------------------------

  async function listSessions() {
    for (;;) {
      if (!document.hidden) {
        try {
          const response = await api("sessions");
          if (!response.ok) throw new Error(`GET /sessions answered ${response.status}`);
          showSessions((await response.json()).sessions ?? []);
          if (!watching) setStatus("");
        } catch (error) {
          setStatus(`Cannot list the sessions: ${error.message}`, "error");
        }
      }
      await sleep(LIST_EVERY_MS);
    }
  }

  function showSessions(sessions) {
    const list = $("session-list");
    list.replaceChildren(
      ...sessions.map((session) => {
        const link = el("a", "", session.sessionId);
        link.href = `#/session/${encodeURIComponent(session.sessionId)}`;
        if (session.sessionId === currentId()) link.setAttribute("aria-current", "page");
        const state = session.sideband?.state ?? "idle";
        return el(
          "li",
          "",
          link,
          el("span", `state ${state}`, state),
          el("span", "muted", formatTime(session.createdAt)),
          session.callId ? el("span", "muted call", session.callId) : null,
        );
      }),
    );
    $("no-sessions").hidden = sessions.length > 0;
  }

  // -- one session, live -------------------------------------------------------------------

  let watching = null; // the AbortController of the session being watched
  let view = null; // the session as last seen: the snapshot, with events applied
  let toolCalls = [];

  function currentId() {
    const match = /^#\/session\/([^/]+)$/.exec(location.hash);
    return match ? decodeURIComponent(match[1]) : null;
  }

  function route() {
    watching?.abort();
    watching = null;
    const id = currentId();
    $("pick").hidden = id !== null;
    $("session").hidden = id === null;
    for (const link of document.querySelectorAll("#session-list a")) {
      if (link.hash === location.hash) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (id === null) {
      setStatus("");
      return;
    }
    view = null;
    toolCalls = [];
    $("session-id").textContent = id;
    $("session-ended").hidden = true;
    for (const part of ["meta", "transcript", "tool-calls", "sideband", "usage", "profile"]) {
      $(part).replaceChildren();
    }
    $("instructions").textContent = "";
    watching = new AbortController();
    watch(id, watching.signal);
  }

  // Follow the session's event stream; reconnect (a fresh snapshot) when it drops, until the
  // session is gone or another one is picked.
  async function watch(id, signal) {
    const path = `session/${encodeURIComponent(id)}/events`;
    while (!signal.aborted) {
      try {
        setStatus("Connecting…");
        const response = await api(path, { signal, accept: "text/event-stream" });
        if (response.status === 404) {
          await response.body?.cancel();
          ended(view ? "This session has ended." : "No such session on this server.");
          return;
        }
        if (!response.ok || !response.body) {
          throw new Error(`the server answered ${response.status}`);
        }
        setStatus("Live", "live");
        for await (const event of readEvents(response.body)) {
          if (signal.aborted) return;
          apply(event);
        }
        if (signal.aborted) return;
        setStatus("The stream closed; checking the session…");
      } catch (error) {
        if (signal.aborted) return;
        setStatus(`Disconnected (${error.message}); reconnecting…`, "error");
      }
      await sleep(RECONNECT_MS);
    }
  }

  function ended(text) {
    setStatus("Ended");
    const notice = $("session-ended");
    notice.textContent = text;
    notice.hidden = false;
  }

  function findEntry(itemId) {
    return view.transcript.find((entry) => entry.itemId === itemId);
  }

  function apply(event) {
    if (event.type === "snapshot") {
      view = { ...event.session, transcript: [...(event.session.transcript ?? [])] };
      renderAll();
      return;
    }
    if (view === null) return; // the snapshot always comes first
    switch (event.type) {
      case "transcript.added":
        if (!findEntry(event.itemId)) {
          const { itemId, role } = event;
          view.transcript.push({ itemId, role, text: "", status: "pending" });
        }
        renderTranscript();
        break;
      case "transcript.completed": {
        const entry = findEntry(event.entry.itemId);
        if (entry) Object.assign(entry, event.entry);
        else view.transcript.push({ ...event.entry });
        renderTranscript();
        break;
      }
      case "transcript.truncated": {
        const entry = findEntry(event.itemId);
        if (entry) Object.assign(entry, { truncated: true, audioEndMs: event.audioEndMs });
        renderTranscript();
        break;
      }
      case "tool_call":
        toolCalls.push(event);
        renderToolCalls();
        break;
      case "instructions":
        view.instructions = event.instructions;
        renderInstructions();
        break;
      case "profile":
        view.profile = event.profile;
        renderProfile();
        break;
      case "sideband":
        view.sideband = event.sideband;
        renderSideband();
        break;
      case "usage":
        view.usage = event.usage;
        renderUsage();
        break;
      default:
        break; // a newer server's event: ignored
    }
  }

  function renderAll() {
    const { sessionId, callId, model, voice } = view;
    fillPairs($("meta"), { sessionId, callId, model, voice });
    renderTranscript();
    renderToolCalls();
    renderSideband();
    renderUsage();
    renderProfile();
    renderInstructions();
  }

  function renderTranscript() {
    $("transcript").replaceChildren(
      ...view.transcript.map((entry) => {
        const notes = [];
        if (entry.status && entry.status !== "complete") notes.push(entry.status);
        if (entry.truncated) notes.push(`cut off at ${entry.audioEndMs ?? "?"} ms`);
        return el(
          "li",
          `entry ${entry.role ?? ""} ${entry.status ?? ""}`,
          el("span", "role", entry.role ?? "?"),
          el("span", "text", entry.text || "…"),
          notes.length ? el("span", "muted note", `(${notes.join(", ")})`) : null,
        );
      }),
    );
  }

  function renderToolCalls() {
    $("tool-calls").replaceChildren(
      ...toolCalls.map((call) =>
        el(
          "li",
          "",
          el(
            "div",
            "tool-head",
            el("strong", "", call.name),
            el("span", `outcome ${call.outcome === "ok" ? "ok" : "bad"}`, call.outcome),
            el("span", "muted", `${call.ms ?? "?"} ms`),
            el("span", "muted", call.callId),
          ),
          el("div", "label", "arguments"),
          el("pre", "", pretty(call.arguments)),
          el("div", "label", "output"),
          el("pre", "", pretty(call.output)),
        ),
      ),
    );
  }

  function renderSideband() {
    fillPairs($("sideband"), view.sideband);
  }

  function renderUsage() {
    const usage = view.usage ?? {};
    const { costUsd, ...counts } = usage;
    const cost =
      typeof costUsd === "number" ? `$${costUsd.toFixed(4)}` : "unknown (a model without a known price)";
    fillPairs($("usage"), { cost, ...counts });
  }

  function renderProfile() {
    $("profile").textContent = pretty(view.profile ?? {});
  }

  function renderInstructions() {
    $("instructions").textContent = view.instructions ?? "";
  }

  // -- start -------------------------------------------------------------------------------

  $("forget-key").hidden = apiKey === null;
  $("forget-key").addEventListener("click", () => {
    storeKey(null);
    location.reload();
  });
  window.addEventListener("hashchange", route);
  route();
  listSessions();
})();
