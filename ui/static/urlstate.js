// The view's state in the URL's fragment (never sent to the server, so neither
// logged by it nor by a proxy), so that a view can be bookmarked and a reload
// restores it: #conn=c1&dir=c2s&type=text,binary&flags=modified&control=1&url=*.example.com&q=transfer&re=1&msg=42&tab=handshake
// docs/ui.md lists the keys.

export const TYPES = ["text", "binary", "ping", "pong", "close", "gap", "resync", "undecodable", "error", "controls"];
export const CONTROL_TYPES = ["ping", "pong", "close", "controls"];
export const FLAGS = ["modified", "dropped", "injected", "compressed", "decoded", "truncated", "hooked", "evicted",
	"would_modify", "would_drop", "decode_error", "lost", "held", "strict", "released", "edited", "timed_out", "out_of_order",
	"conn_closed"];

// defaults is the view with no filter.
export function defaults() {
	return {conn: "", dir: "", types: [], flags: [], control: false, url: "", q: "", re: false, msg: null, tab: "message", view: "history"};
}

const list = (s, known) => (s || "").split(",").map(x => x.trim()).filter(x => known.includes(x));

// parse reads a fragment ("#…" or "…") into a view state, and the token when the
// fragment carries one (the URL wstap prints).
export function parse(hash) {
	const p = new URLSearchParams((hash || "").replace(/^#/, ""));
	const s = defaults();
	s.conn = p.get("conn") || "";
	s.dir = ["c2s", "s2c"].includes(p.get("dir")) ? p.get("dir") : "";
	s.types = list(p.get("type"), TYPES);
	s.flags = list(p.get("flags"), FLAGS);
	s.control = p.get("control") === "1";
	s.url = p.get("url") || "";
	s.q = p.get("q") || "";
	s.re = p.get("re") === "1";
	const msg = Number.parseInt(p.get("msg") || "", 10);
	s.msg = Number.isFinite(msg) && msg >= 0 ? msg : null;
	s.tab = ["handshake", "compose"].includes(p.get("tab")) ? p.get("tab") : "message";
	s.view = p.get("view") === "intercept" ? "intercept" : "history";
	return {state: s, token: p.get("token") || ""};
}

// format writes a view state as a fragment ("" for the default view).
export function format(s) {
	const p = new URLSearchParams();
	if (s.conn) p.set("conn", s.conn);
	if (s.dir) p.set("dir", s.dir);
	if (s.types.length) p.set("type", s.types.join(","));
	if (s.flags.length) p.set("flags", s.flags.join(","));
	if (s.control) p.set("control", "1");
	if (s.url) p.set("url", s.url);
	if (s.q) p.set("q", s.q);
	if (s.q && s.re) p.set("re", "1");
	if (s.msg !== null) p.set("msg", String(s.msg));
	if (s.tab !== "message") p.set("tab", s.tab);
	if (s.view !== "history") p.set("view", s.view);
	const f = p.toString();
	return f ? "#" + f : "";
}

// apiQuery turns a view state into the parameters of /api/messages.
export function apiQuery(s) {
	return {
		conn: s.conn, dir: s.dir, type: s.types.join(","), flags: s.flags.join(","),
		control: s.control || s.types.some(t => CONTROL_TYPES.includes(t)),
		url: s.url, q: s.re ? "" : s.q, re: s.re ? s.q : "",
	};
}
