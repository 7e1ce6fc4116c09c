// The page: wstap's live WebSocket history (docs/ui.md). Plain ES modules, no
// build step. Nothing from the traffic is ever inserted as HTML: see dom.js.
import {get, login, Events, HTTPError} from "./api.js";
import {el, setText, num, bytes} from "./dom.js";
import {parse, format, defaults, apiQuery, TYPES, FLAGS} from "./urlstate.js";
import {VirtualList} from "./vlist.js";
import {ConnList, handshakeView, hostOf} from "./conns.js";
import {messageView} from "./detail.js";
import {COLUMNS, createRow, renderRow, FLAG_INFO} from "./rows.js";
import {InterceptView} from "./intercept.js";
import {composeView, composeConnChanged} from "./compose.js";

const $ = id => document.getElementById(id);

const ROW_HEIGHT = 22;
const CONN_LIMIT = 2000;       // connections listed (the newest)
const CONN_REFRESH_MS = 1000;  // at most this often while traffic flows
const HANDSHAKE_REFRESH_MS = 2000;

let state = defaults();
let info = null;
let live = null;          // the latest state event
let shownVersion = -1;    // the history version on screen
let paused = false;
let streamStatus = "connecting";
let list, conns, intercept = null;
let resendOf = null;      // the message the Compose tab sends again (null: a new message)
const connsById = new Map(); // id → ConnView, with host
const hosts = new Map();     // id → host, for the list's conn column
let lastTotal = 0, lastTook = 0, queryError = "";

// --- start ------------------------------------------------------------------

async function main() {
	// A URL with a token pasted into this tab changes only the fragment, which
	// loads nothing: start again with it.
	window.addEventListener("hashchange", () => { if (parse(location.hash).token) location.reload(); });
	const {state: s, token} = parse(location.hash);
	state = s;
	// The token leaves the address bar (and the history entry) at once.
	writeHash();
	if (token) {
		try {
			await login(token);
		} catch (err) {
			return showLogin(err instanceof HTTPError && err.status === 401 ? "The token in the URL is wrong (wstap prints a new one each run)." : String(err.message || err));
		}
	}
	try {
		info = await get("/api/info");
	} catch (err) {
		if (err instanceof HTTPError && err.status === 401) {
			return showLogin(token ? "The token was not accepted." : "This page needs the token wstap printed.");
		}
		return showError("Cannot reach wstap: " + (err.message || err));
	}
	$("login").hidden = true;
	setup();
	new Events(onState, onStream, ev => intercept?.onEvent(ev));
}

function showLogin(why) {
	$("login-why").textContent = why;
	$("login").hidden = false;
	$("login-token").focus();
}

$("login-form").addEventListener("submit", async ev => {
	ev.preventDefault();
	const token = $("login-token").value.trim();
	if (!token) return;
	try {
		await login(token);
		location.reload();
	} catch (err) {
		$("login-why").textContent = err instanceof HTTPError && err.status === 401 ? "Wrong token." : String(err.message || err);
	}
});

// writeHash puts the view state in the fragment, replacing the history entry.
function writeHash() {
	const url = location.pathname + location.search + format(state);
	if (url !== location.pathname + location.search + location.hash) history.replaceState(null, "", url);
}

function showError(msg) {
	const e = $("error");
	e.textContent = msg;
	e.hidden = !msg;
}

// --- layout and controls ------------------------------------------------------

function setup() {
	setText($("mode"), info.mode + (info.proxy ? " " + info.proxy : "") + (info.source ? " " + info.source : ""));
	$("mode").title = "wstap " + info.version + (info.read_only ? " (read-only)" : "");
	document.title = "wstap — " + info.mode;

	const head = $("msgs-head");
	for (const [label, cls] of COLUMNS) head.append(el("span", {className: "cell " + cls, role: "columnheader"}, label));

	list = new VirtualList($("msgs"), {
		rowHeight: ROW_HEIGHT,
		fetch: (offset, limit, signal) => get("/api/messages", {...apiQuery(state), offset, limit}, signal),
		locate: id => get("/api/messages", {...apiQuery(state), offset: 0, limit: 0, at: id}),
		createRow,
		renderRow: (r, it, i) => renderRow(r, it, i, hosts),
		onTotal: (total, res) => {
			lastTotal = total;
			// The query's own answer, not the cached pages after it.
			lastTook = Math.max(lastTook, res.took_ms || 0);
			queryError = "";
			showResult();
		},
		onSelect: item => selectMessage(item.id),
		onError: err => {
			queryError = err.message || String(err);
			lastTotal = 0;
			showResult();
		},
	});
	$("msgs").addEventListener("scroll", () => showToEnd(), {passive: true});
	// The header's columns line up with the rows, whatever the scroll bar takes.
	new ResizeObserver(() => {
		const l = $("msgs");
		head.style.paddingRight = (l.offsetWidth - l.clientWidth) + "px";
	}).observe($("msgs"));
	conns = new ConnList($("conns"), id => selectConn(id));

	buildChecks($("types"), TYPES, "types", t => t);
	buildChecks($("flags"), FLAGS, "flags", f => f.replace("_", " "), f => FLAG_INFO[f]?.[1]);
	for (const b of $("dir").querySelectorAll("button")) {
		b.addEventListener("click", () => { state.dir = b.dataset.dir; changed(); });
	}
	$("control").addEventListener("change", () => { state.control = $("control").checked; changed(); });
	$("re").addEventListener("change", () => { state.re = $("re").checked; changed(); });
	debounced($("url"), 300, v => { state.url = v.trim(); changed(true); });
	debounced($("q"), 300, v => { state.q = v; changed(); });
	$("filters").addEventListener("submit", ev => ev.preventDefault());
	$("clear").addEventListener("click", () => {
		Object.assign(state, {dir: "", types: [], flags: [], control: false, url: "", q: "", re: false});
		changed(true);
	});
	$("live").addEventListener("click", togglePause);
	$("to-end").addEventListener("click", () => list.scrollToEnd());
	for (const t of document.querySelectorAll(".tabs [data-tab]")) {
		t.addEventListener("click", () => showTab(t.dataset.tab));
	}
	document.addEventListener("click", ev => {
		for (const d of document.querySelectorAll("details.menu[open]")) if (!d.contains(ev.target)) d.open = false;
	});
	document.addEventListener("keydown", onKey);
	document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
	window.addEventListener("hashchange", () => {
		const {state: s, token} = parse(location.hash);
		if (token) return; // see main
		const connChanged = s.conn !== state.conn, urlChanged = s.url !== state.url;
		state = s;
		changed(urlChanged);
		showView(state.view);
		if (connChanged || s.tab === "handshake") showTab(s.tab);
		if (s.msg !== null) { list.select(s.msg); loadMessage(s.msg, true); }
	});
	splitters();

	if (info.intercept) {
		$("views").hidden = false;
		$("ic-switch").hidden = false;
		intercept = new InterceptView({
			openMessage: id => { showView("history"); selectMessage(id); list.select(id); },
			onCount: n => {
				document.title = "wstap — " + info.mode + (n ? " (" + n + " held)" : "");
				setText($("ic-count"), num(n));
				$("ic-count").classList.toggle("some", n > 0);
			},
		});
		for (const b of $("views").querySelectorAll("button")) b.addEventListener("click", () => showView(b.dataset.view));
	}
	$("tab-compose").hidden = !info.inject;
	if (!info.inject && state.tab === "compose") state.tab = "message";
	showView(state.view);

	syncControls();
	if (state.msg !== null) {
		list.select(state.msg);
		loadMessage(state.msg, true);
	}
	list.reset(state.msg);
	refreshConns(true);
	showTab(state.tab);
	updateExports();
}

// buildChecks fills a menu with a checkbox per value, bound to state[key].
function buildChecks(menu, values, key, label, title) {
	const body = menu.querySelector(".menu-body");
	for (const v of values) {
		const cb = el("input", {type: "checkbox", value: v});
		cb.addEventListener("change", () => {
			state[key] = values.filter(x => body.querySelector(`input[value="${x}"]`).checked);
			changed();
		});
		body.append(el("label", {className: "check", title: title ? title(v) : ""}, cb, " " + label(v)));
	}
	const none = el("button", {type: "button", className: "small"}, "none");
	none.addEventListener("click", () => { state[key] = []; changed(); });
	body.append(el("div", {className: "menu-foot"}, none));
}

// debounced calls f with input's value once typing paused for ms (at once on Enter).
function debounced(input, ms, f) {
	let t = 0;
	input.addEventListener("input", () => { clearTimeout(t); t = setTimeout(() => f(input.value), ms); });
	input.addEventListener("keydown", ev => {
		if (ev.key === "Enter") { clearTimeout(t); f(input.value); }
	});
}

// syncControls shows state in the filter controls.
function syncControls() {
	for (const b of $("dir").querySelectorAll("button")) {
		b.classList.toggle("on", b.dataset.dir === state.dir);
		b.setAttribute("aria-pressed", String(b.dataset.dir === state.dir));
	}
	for (const [id, key, none] of [["types", "types", "all"], ["flags", "flags", "any"]]) {
		const menu = $(id);
		for (const cb of menu.querySelectorAll("input[type=checkbox]")) cb.checked = state[key].includes(cb.value);
		setText(menu.querySelector(".summary-value"), state[key].length ? state[key].join(", ").replaceAll("_", " ") : none);
		menu.classList.toggle("active", state[key].length > 0);
	}
	$("control").checked = state.control;
	$("re").checked = state.re;
	if ($("url").value.trim() !== state.url) $("url").value = state.url;
	if ($("q").value !== state.q) $("q").value = state.q;
	$("q").classList.toggle("active", !!state.q);
	$("url").classList.toggle("active", !!state.url);
}

// changed applies a new filter: the address bar, the controls, the list (and the
// connections, when their filter changed).
function changed(connsToo) {
	writeHash();
	syncControls();
	queryError = "";
	lastTook = 0;
	list.reset(state.msg);
	showResult();
	if (connsToo) refreshConns(true);
	updateExports();
}

function showResult() {
	const r = $("result");
	r.replaceChildren();
	r.classList.toggle("bad", !!queryError);
	$("q").classList.toggle("invalid", !!queryError && state.re);
	if (queryError) {
		r.append(el("span", {className: "err", title: queryError}, state.re ? "invalid regular expression" : "invalid filter"));
	} else {
		const filtered = apiFiltered();
		r.append(el("b", {}, num(lastTotal)), lastTotal === 1 ? " row" : " rows");
		if (filtered && live) r.append(" of " + num(live.rows));
		r.append(el("span", {className: "muted"}, " · took " + lastTook + " ms"));
	}
	const empty = $("msgs-empty");
	empty.hidden = lastTotal > 0 && !queryError;
	if (!empty.hidden) {
		empty.textContent = queryError ? "The filter is not valid: " + queryError.replace(/^wstap ui: /, "")
			: apiFiltered() ? "No rows match the filter." : "No messages yet: they show up here as they happen.";
	}
	showToEnd();
}

function apiFiltered() {
	return !!(state.conn || state.dir || state.types.length || state.flags.length || state.url || state.q);
}

function showToEnd() {
	if (list) $("to-end").hidden = list.follow || list.atBottom() || lastTotal === 0;
}

// --- live updates -----------------------------------------------------------

function onStream(status) {
	streamStatus = status;
	showLive();
	if (status === "closed") {
		get("/api/info").catch(err => {
			if (err instanceof HTTPError && err.status === 401) showLogin("The session ended (wstap restarted?): open the URL it printed.");
		});
	}
}

function onState(st) {
	live = st;
	showStatus();
	if (!paused) refresh();
}

let refreshQueued = false;

// refresh brings what is on screen up to the history's latest state, at most once
// a frame however many events arrived.
function refresh() {
	if (refreshQueued || !live || paused || document.hidden) return;
	refreshQueued = true;
	requestAnimationFrame(() => {
		refreshQueued = false;
		if (live.version === shownVersion) return;
		shownVersion = live.version;
		list.refresh();
		refreshConns(false);
		refreshHandshake(false);
	});
}

function togglePause() {
	paused = !paused;
	showLive();
	if (!paused) refresh();
}

function showLive() {
	const b = $("live");
	let text = streamStatus, cls = streamStatus;
	if (paused) {
		text = "paused";
		cls = "paused";
		if (live && live.version !== shownVersion) text += " · " + num(Math.max(0, live.rows - (shownRows ?? live.rows))) + " new rows";
	}
	setText($("live-text"), text);
	b.className = "live " + cls;
	b.setAttribute("aria-pressed", String(paused));
	b.title = paused ? "Paused: the view stays as it is. Click (or p) to resume." : "Live: click (or p) to pause updates.";
}

let shownRows = null;

function showStatus() {
	const st = live;
	if (!paused) shownRows = st.rows;
	const s = $("stats");
	s.replaceChildren(
		el("span", {}, el("b", {}, num(st.connections)), st.connections === 1 ? " connection" : " connections"),
		el("span", {}, el("b", {}, num(st.rows)), " rows"),
		el("span", {title: "Rows whose payload was evicted from memory (--ui-history)"}, el("b", {}, num(st.evicted)), " evicted"),
		el("span", {className: "muted", title: "payload bytes kept in memory, of the limit"}, bytes(st.used) + " of " + bytes(st.limit)));
	const lost = $("lost");
	lost.hidden = !st.lost;
	if (st.lost) setText(lost, num(st.lost) + (st.lost === 1 ? " message" : " messages") + " not recorded: the history could not keep up");
	showLive();
	if (queryError === "" && apiFiltered()) showResult();
}

// --- connections ----------------------------------------------------------------

let connsAt = 0, connsTimer = 0, connsCount = -1, connsLoading = false;

// refreshConns fetches the connections list: now when asked, else at most once
// a CONN_REFRESH_MS (sooner when connections were added).
function refreshConns(now) {
	const wait = CONN_REFRESH_MS - (Date.now() - connsAt);
	if (!now && live && live.connections === connsCount && wait > 0) {
		if (!connsTimer) connsTimer = setTimeout(() => { connsTimer = 0; refreshConns(true); }, wait);
		return;
	}
	if (connsLoading) { connsTimer ||= setTimeout(() => { connsTimer = 0; refreshConns(true); }, 200); return; }
	connsLoading = true;
	connsAt = Date.now();
	connsCount = live ? live.connections : -1;
	const url = state.url;
	const load = async () => {
		let res = await get("/api/connections", {url, offset: Math.max(0, (connsCount > 0 ? connsCount : 0) - CONN_LIMIT), limit: CONN_LIMIT});
		if (res.total > res.offset + res.items.length || (res.offset > 0 && res.total < res.offset + CONN_LIMIT)) {
			res = await get("/api/connections", {url, offset: Math.max(0, res.total - CONN_LIMIT), limit: CONN_LIMIT});
		}
		return res;
	};
	load().then(res => {
		if (url !== state.url) return;
		connsById.clear();
		for (const c of res.items) {
			c.host = hostOf(c.url);
			connsById.set(c.id, c);
			hosts.set(c.id, c.host);
		}
		conns.update(res.items, res.total, res.offset);
		if (state.tab === "compose") {
			const box = $("detail").firstChild, c = box && connsById.get(box.dataset?.conn);
			if (c) composeConnChanged(box, c);
		}
		conns.select(state.conn);
		showError("");
		updateExports();
	}, err => showError("Connections: " + (err.message || err))).finally(() => { connsLoading = false; });
}

function selectConn(id) {
	if (id === state.conn && id) { showTab("handshake"); return; }
	state.conn = id;
	conns.select(id);
	changed();
	showTab(id ? "handshake" : "message");
}

// --- detail ---------------------------------------------------------------------

let msgCtl = null, shown = {message: null, handshake: null}, handshakeAt = 0;

// showView shows the history or the intercept view.
function showView(view) {
	if (view === "intercept" && !intercept) view = "history";
	state.view = view;
	writeHash();
	for (const b of $("views").querySelectorAll("button")) {
		b.classList.toggle("on", b.dataset.view === view);
		b.setAttribute("aria-selected", String(b.dataset.view === view));
	}
	const ic = view === "intercept";
	$("ic-view").hidden = !ic;
	$("main").hidden = ic;
	$("filters").hidden = ic;
	if (!ic) refresh();
}

// resendable tells whether message d can be sent again from here: a data
// message of a connection still open, in a UI that can inject.
function resendable(d) {
	const c = connsById.get(d.conn);
	return info.inject && d.kind === "message" && (d.opcode === "text" || d.opcode === "binary") && c?.state === "open";
}

function messageDetail(d) {
	return messageView(d, connsById.get(d.conn), resendable(d) ? m => { resendOf = m; showTab("compose"); } : null);
}

function showTab(tab) {
	if (tab !== "compose") resendOf = null;
	state.tab = tab;
	writeHash();
	for (const t of document.querySelectorAll(".tabs [data-tab]")) {
		t.classList.toggle("on", t.dataset.tab === tab);
		t.setAttribute("aria-selected", String(t.dataset.tab === tab));
	}
	const d = $("detail");
	if (tab === "handshake") {
		const id = state.conn || shown.message?.conn;
		if (!id) {
			d.replaceChildren(el("p", {className: "muted pad"}, "Select a connection (or a message) to see its handshake."));
			return;
		}
		refreshHandshake(true);
	} else if (tab === "compose") {
		const id = state.conn || shown.message?.conn;
		d.replaceChildren(composeView(id ? connsById.get(id) || {id, state: "open", url: ""} : null, resendOf, {
			onCancelResend: () => { resendOf = null; showTab("compose"); },
		}));
	} else if (shown.message) {
		d.replaceChildren(messageDetail(shown.message));
	} else {
		d.replaceChildren(el("p", {className: "muted pad"}, "Select a message to see its payload."));
	}
}

function selectMessage(id) {
	state.msg = id;
	writeHash();
	loadMessage(id);
}

// loadMessage shows message id in the Message tab, switching to it unless keepTab
// (a view restored from the address bar keeps its tab).
async function loadMessage(id, keepTab) {
	msgCtl?.abort();
	const ctl = msgCtl = new AbortController();
	try {
		const d = await get("/api/messages/" + id, null, ctl.signal);
		if (ctl !== msgCtl) return;
		shown.message = d;
		if (state.tab === "message") {
			$("detail").replaceChildren(messageDetail(d));
			$("detail").scrollTop = 0;
		} else if (!keepTab) {
			showTab("message");
		} else if (!state.conn) {
			refreshHandshake(true); // the handshake of the message's connection
		}
	} catch (err) {
		if (err.name === "AbortError") return;
		$("detail").replaceChildren(el("p", {className: "err pad"}, "Message " + id + ": " + (err.message || err)));
	}
}

// refreshHandshake shows the handshake of the selected connection (now when
// asked, else at most once every HANDSHAKE_REFRESH_MS while the tab shows it).
async function refreshHandshake(now) {
	if (state.tab !== "handshake") return;
	const id = state.conn || shown.message?.conn;
	if (!id || !now && Date.now() - handshakeAt < HANDSHAKE_REFRESH_MS) return;
	handshakeAt = Date.now();
	try {
		const d = await get("/api/connections/" + encodeURIComponent(id));
		if (state.tab !== "handshake" || (state.conn || shown.message?.conn) !== id) return;
		const key = JSON.stringify(d);
		if (shown.handshake === key && $("detail").firstChild?.classList?.contains("handshake")) return;
		shown.handshake = key;
		const keep = $("detail").scrollTop;
		$("detail").replaceChildren(handshakeView(d));
		if (!now) $("detail").scrollTop = keep;
	} catch (err) {
		$("detail").replaceChildren(el("p", {className: "err pad"}, "Connection " + id + ": " + (err.message || err)));
	}
}

// --- export -----------------------------------------------------------------------

function updateExports() {
	let ids = null; // null: every connection
	if (state.conn) ids = [state.conn];
	else if (state.url) ids = [...connsById.keys()];
	const set = (a, path, label) => {
		a.textContent = label;
		if (ids && ids.length === 0) { a.removeAttribute("href"); a.classList.add("disabled"); return; }
		a.classList.remove("disabled");
		a.href = path + (ids ? "?conns=" + encodeURIComponent(ids.join(",")) : "");
	};
	const shownLabel = ids ? "Connections shown (" + num(ids.length) + ")" : "Connections shown (all)";
	$("har-all").href = "/api/export.har";
	$("jsonl-all").href = "/api/export.jsonl";
	set($("har-shown"), "/api/export.har", shownLabel);
	set($("jsonl-shown"), "/api/export.jsonl", shownLabel);
}

// --- keys and panes -----------------------------------------------------------

function onKey(ev) {
	const t = ev.target;
	const typing = t instanceof HTMLInputElement && t.type !== "checkbox" || t instanceof HTMLTextAreaElement;
	if (ev.key === "Escape") {
		for (const d of document.querySelectorAll("details.menu[open]")) d.open = false;
		if (typing) t.blur();
		$("msgs").focus();
		return;
	}
	if (typing || ev.ctrlKey || ev.metaKey || ev.altKey || state.view === "intercept") return;
	if (t instanceof HTMLSelectElement) return;
	const page = list.page();
	switch (ev.key) {
	case "ArrowDown": case "j": list.move(1); break;
	case "ArrowUp": case "k": list.move(-1); break;
	case "PageDown": list.move(page); break;
	case "PageUp": list.move(-page); break;
	case "Home": list.moveTo(0, "key"); break;
	case "End": list.moveTo(lastTotal - 1, "key"); list.follow = true; break;
	case "/": $("q").focus(); $("q").select(); break;
	case "p": togglePause(); break;
	case "h": showTab(state.tab === "handshake" ? "message" : "handshake"); break;
	default: return;
	}
	ev.preventDefault();
}

// splitters makes the panes resizable, remembering the sizes.
function splitters() {
	const main = $("main"), right = $("right");
	const saved = JSON.parse(localStorage.getItem("wstap.panes") || "{}");
	if (saved.conns) main.style.setProperty("--conns-w", saved.conns + "px");
	if (saved.detail) right.style.setProperty("--detail-h", saved.detail + "px");
	const drag = (handle, move) => {
		handle.addEventListener("pointerdown", ev => {
			ev.preventDefault();
			handle.setPointerCapture(ev.pointerId);
			handle.classList.add("dragging");
			const mv = e => move(e);
			const up = () => {
				handle.removeEventListener("pointermove", mv);
				handle.classList.remove("dragging");
				localStorage.setItem("wstap.panes", JSON.stringify(saved));
			};
			handle.addEventListener("pointermove", mv);
			handle.addEventListener("pointerup", up, {once: true});
		});
	};
	drag($("split-v"), e => {
		const w = Math.max(200, Math.min(e.clientX - main.getBoundingClientRect().left, main.clientWidth - 400));
		saved.conns = Math.round(w);
		main.style.setProperty("--conns-w", saved.conns + "px");
	});
	drag($("split-h"), e => {
		const r = right.getBoundingClientRect();
		const h = Math.max(120, Math.min(r.bottom - e.clientY, r.height - 120));
		saved.detail = Math.round(h);
		right.style.setProperty("--detail-h", saved.detail + "px");
	});
}

main();
