// A message's detail: its facts, and its payloads side by side (what went on the
// wire and what a codec decoded from it; for a modified message, what came in
// and what went out), each as text, pretty JSON or a hex dump, with copy buttons.
import {el, num, bytes, stamp, copyText} from "./dom.js";
import {fromBase64, decodeText, toHex, textNodes, isJSON, prettyJSON, hexDump} from "./payload.js";
import {flagBadge, rowSummary, holdState} from "./rows.js";

const TEXT_LIMIT = 256 << 10; // bytes shown as text or JSON before "show all"
const HEX_LIMIT = 64 << 10;   // bytes shown as hex before "show all"
const HIGHLIGHT_LIMIT = 128 << 10;

const TITLES = {
	payload: "Wire", decoded: "Decoded", original: "Wire", original_decoded: "Decoded", would_payload: "Would send",
};
const TIPS = {
	payload: "What went on the wire (in sniff mode: what was captured)",
	decoded: "What the codecs decoded from it",
	original: "What came in, before the chain changed it",
	original_decoded: "What came in, decoded, before the chain changed it",
	would_payload: "What the rules would have sent (sniff mode)",
};

// prefs remembers the view (text, json, hex) last picked for each kind of part.
const prefs = {};

const closeNames = {1000: "normal closure", 1001: "going away", 1002: "protocol error", 1003: "unsupported data",
	1005: "no status", 1006: "abnormal closure", 1007: "invalid payload", 1008: "policy violation", 1009: "message too big",
	1010: "mandatory extension", 1011: "internal error", 1012: "service restart", 1013: "try again later", 1015: "TLS handshake"};

// What each state of a hold means, for the note of its rows.
const HOLD_NOTES = {
	held: "Held at the breakpoint when it arrived: not forwarded then. A later row of this direction says what became of it.",
	forwarded: "Released from the breakpoint and forwarded.",
	timed_out: "Nobody decided in time (--intercept-timeout): forwarded unchanged.",
	dropped: "Dropped at the breakpoint: never forwarded.",
};

// messageView shows d (a message detail of the API); conn is its connection, when
// known; onResend, when given, offers to send the message again.
export function messageView(d, conn, onResend) {
	const parts = d.parts || {};
	const modified = !!parts.original || !!parts.original_decoded;
	const head = el("div", {className: "md-head"},
		el("span", {className: "md-id mono"}, "#" + d.id),
		d.dir ? el("span", {className: "dir " + d.dir}, d.dir === "c2s" ? "client → server" : "server → client") : null,
		el("span", {className: "mono"}, d.kind === "message" ? d.opcode : d.kind + (d.opcode ? " " + d.opcode : "")),
		el("span", {}, num(d.len) + " B" + (d.original_len && d.original_len !== d.len ? " (received " + num(d.original_len) + " B)" : "")),
		d.frames ? el("span", {className: "muted"}, d.frames + (d.frames === 1 ? " frame" : " frames")) : null,
		el("span", {className: "muted"}, "seq " + d.seq),
		el("span", {className: "muted", title: d.time}, stamp(d.time)),
		el("span", {className: "muted", title: conn?.url || ""}, d.conn + (conn ? " " + (conn.host || "") : "")),
		el("span", {className: "badges"}, ...(d.flags || []).map(flagBadge)),
		onResend ? el("span", {className: "spacer"}) : null,
		onResend ? el("button", {type: "button", className: "small", id: "resend", title: "Send this message again on its connection, edited or not",
			onclick: () => onResend(d)}, "Resend…") : null);
	const box = el("div", {className: "msg-detail", "data-id": d.id}, head);
	const note = (cls, ...text) => box.append(el("div", {className: "md-note " + cls}, ...text));
	if (d.kind !== "message") note("info", rowSummary(d));
	const hold = d.kind === "message" ? holdState(d.flags) : null;
	if (hold) {
		let text = HOLD_NOTES[hold[0]];
		if (d.flags.includes("conn_closed")) text = "Dropped: its connection ended while it was held (or waited behind a held message).";
		else if (d.flags.includes("edited")) text = "Released from the breakpoint, edited (Received is what arrived, Forwarded what went on).";
		if (d.held_seq !== undefined) text += " It was held as seq " + d.held_seq + ".";
		if (d.flags.includes("out_of_order")) text += " Sent out of order: later messages of its direction went out before it.";
		if (d.order === "strict") text += " Order strict: its direction waited behind it.";
		note(hold[0] === "dropped" ? "warn" : "info", el("span", {className: "hold s-" + hold[0]}, hold[1]), " ", text);
	}
	if (d.text && d.kind === "message") {
		const p = el("span");
		textNodes(p, d.text);
		note("warn", "codec declined the message: ", p);
	}
	if (d.opcode === "close" && parts.payload) {
		const b = fromBase64(parts.payload.base64);
		if (b.length >= 2) {
			const code = b[0] << 8 | b[1];
			const reason = el("span");
			textNodes(reason, decodeText(b.subarray(2)));
			note("info", "close code " + code + (closeNames[code] ? " (" + closeNames[code] + ")" : ""), b.length > 2 ? ", reason “" : "",
				b.length > 2 ? reason : "", b.length > 2 ? "”" : "");
		}
	}
	if (d.evicted) {
		note(d.from_log ? "info" : "warn", d.from_log ? "The payload was evicted from memory and read back from the event log."
			: "The payload was evicted from memory (past --ui-history); run wstap with --log to read evicted payloads back.");
	}
	if (d.flags?.includes("truncated")) note("warn", "Truncated: the payload kept is shorter than the message.");

	let grid;
	if (modified) {
		grid = el("div", {className: "parts cols"},
			el("div", {className: "col-title"}, "Received"), el("div", {className: "col-title"}, "Forwarded"));
		grid.append(partView("original", parts.original, d), partView("payload", parts.payload, d));
		if (parts.original_decoded || parts.decoded) {
			grid.append(partView("original_decoded", parts.original_decoded, d), partView("decoded", parts.decoded, d));
		}
	} else {
		const list = ["payload", "decoded", "would_payload"].filter(p => parts[p]);
		grid = el("div", {className: "parts" + (list.length > 1 ? " cols" : "")}, ...list.map(p => partView(p, parts[p], d)));
	}
	if (Object.keys(parts).length) box.append(grid);
	return box;
}

// defaultMode picks how to show b first: the view last picked for this part when
// it applies, else JSON when it parses, text when it is UTF-8, hex otherwise.
function defaultMode(name, b, text, binary) {
	const json = text !== null && isJSON(text);
	const pref = prefs[name];
	if (pref === "hex" || pref === "text" && text !== null || pref === "json" && json) return pref;
	if (json) return "json";
	if (text !== null && !binary) return "text";
	return text !== null && b.length && printable(text) ? "text" : "hex";
}

function printable(s) {
	return !/[\x00-\x08\x0e-\x1f\x7f\ufffd]/.test(s);
}

// partView shows one payload (a PartView of the API), missing or not.
function partView(name, pv, d) {
	const title = el("h4", {title: TIPS[name]}, TITLES[name]);
	const sec = el("section", {className: "part", "data-part": name});
	if (!pv) {
		sec.append(el("div", {className: "part-head"}, title), el("p", {className: "muted pad"}, "(none)"));
		return sec;
	}
	const b = fromBase64(pv.base64);
	const text = pv.utf8 ? decodeText(b) : null;
	let mode = defaultMode(name, b, text, d.opcode === "binary" && name === "payload");
	let full = false;
	const body = el("div", {className: "part-body"});
	const modes = {};
	const seg = el("div", {className: "seg", role: "group", "aria-label": "view as"});
	for (const [m, label] of [["text", "Text"], ["json", "JSON"], ["hex", "Hex"]]) {
		const btn = el("button", {className: "small", "data-mode": m}, label);
		btn.addEventListener("click", () => { mode = m; prefs[name] = m; full = false; show(); });
		modes[m] = btn;
		seg.append(btn);
	}
	modes.json.disabled = text === null || !isJSON(text);
	if (modes.json.disabled) modes.json.title = "not JSON";
	const copy = (label, f, tip) => {
		const btn = el("button", {className: "small", title: tip}, label);
		btn.addEventListener("click", () => copyText(f(), btn));
		return btn;
	};
	sec.append(el("div", {className: "part-head"},
		title, el("span", {className: "muted size"}, bytes(pv.len) + (pv.utf8 ? " · UTF-8" : " · binary")),
		el("span", {className: "spacer"}), seg,
		el("span", {className: "copies", role: "group", "aria-label": "copy"}, "copy",
			copy("text", () => decodeText(b), "Copy as text (UTF-8)"),
			copy("hex", () => toHex(b), "Copy as hex"),
			copy("base64", () => pv.base64, "Copy as base64"))),
		body);

	function show() {
		for (const [m, btn] of Object.entries(modes)) {
			btn.classList.toggle("on", m === mode);
			btn.setAttribute("aria-pressed", String(m === mode));
		}
		body.replaceChildren();
		sec.dataset.mode = mode;
		const limit = mode === "hex" ? HEX_LIMIT : TEXT_LIMIT;
		const cut = !full && b.length > limit;
		const shown = cut ? b.subarray(0, limit) : b;
		if (b.length === 0) {
			body.append(el("p", {className: "muted pad"}, "(empty)"));
		} else if (mode === "hex") {
			body.append(hexDump(shown));
		} else if (mode === "json" && !cut) {
			const pre = el("pre", {className: "payload json"});
			prettyJSON(pre, text, b.length <= HIGHLIGHT_LIMIT);
			body.append(pre);
		} else {
			const pre = el("pre", {className: "payload text"});
			textNodes(pre, cut ? decodeText(shown) : text ?? decodeText(b));
			body.append(pre);
		}
		if (cut) {
			const more = el("button", {className: "small"}, "show all " + bytes(b.length));
			more.addEventListener("click", () => { full = true; show(); });
			body.append(el("div", {className: "more"}, "showing the first " + bytes(limit) + " ", more));
		}
	}
	show();
	return sec;
}
