// Rows of the message list: their cells, flag badges and the text of rows that
// are not messages (a capture's gaps, resyncs, errors; counted pings).
import {el, setText, num, bytes, clock} from "./dom.js";

// FLAG_INFO: the short label a badge shows in the list, and what it means.
export const FLAG_INFO = {
	modified: ["mod", "modified: the chain changed it (detail shows what was received)"],
	dropped: ["drop", "dropped: not forwarded"],
	injected: ["inj", "injected: sent by wstap (a hook, or Compose and Resend in the UI)"],
	compressed: ["z", "compressed on the wire (permessage-deflate)"],
	decoded: ["dec", "decoded by a codec"],
	truncated: ["trunc", "truncated: the payload kept is shorter than the message"],
	hooked: ["hook", "passed through the hooks"],
	evicted: ["evict", "payload evicted from memory"],
	would_modify: ["w-mod", "sniff: the rules would have modified it"],
	would_drop: ["w-drop", "sniff: the rules would have dropped it"],
	decode_error: ["dec!", "a codec declined it"],
	lost: ["lost", "gap: a message in progress was lost"],
	held: ["held", "held at the breakpoint when it arrived (its release is a later row)"],
	strict: ["strict", "held with order=strict: its direction waited behind it"],
	released: ["rel", "the end of a hold: what was forwarded (or dropped)"],
	edited: ["edit", "edited at the breakpoint"],
	timed_out: ["t/o", "timed out: nobody decided in time, forwarded unchanged"],
	out_of_order: ["ooo", "sent out of order: later messages of its direction went out before it"],
	conn_closed: ["closed", "dropped: its connection ended while it was held"],
};

// The list leaves "hooked" out (every message of a proxy with hooks has it), and
// the facts of a hold that the row's label says in words.
const LIST_HIDDEN = new Set(["hooked", "held", "released", "strict", "edited", "timed_out", "out_of_order", "conn_closed"]);

// holdState says what a row of a hold is, as [class, words], or null for a row
// that is not about a hold: held (when it arrived), or what became of it.
export function holdState(flags) {
	if (!flags) return null;
	if (flags.includes("held")) return ["held", flags.includes("strict") ? "held (strict order)" : "held"];
	// A release dropped as its connection ended, or a message that waited behind a
	// strict hold and never went out.
	if (flags.includes("conn_closed")) return ["dropped", "dropped: connection closed"];
	if (!flags.includes("released")) return null;
	if (flags.includes("dropped")) return ["dropped", "dropped"];
	let s = flags.includes("timed_out") ? "timed out, sent unchanged" : flags.includes("edited") ? "forwarded edited" : "forwarded";
	if (flags.includes("out_of_order")) s += ", sent out of order";
	return [flags.includes("timed_out") ? "timed_out" : "forwarded", s];
}

// flagBadge is the badge of one flag, with its full name.
export function flagBadge(f, short) {
	const info = FLAG_INFO[f] || [f, f];
	return el("span", {className: "badge f-" + f, title: info[1]}, short ? info[0] : f.replace("_", " "));
}

// rowSummary describes a row that is not a message.
export function rowSummary(r) {
	switch (r.kind) {
	case "gap":
		return "gap: " + num(r.len) + " bytes missing from the capture" + (r.flags?.includes("lost") ? "; a message was lost" : "");
	case "resync":
		return "resync: frames found again after " + num(r.len) + " skipped bytes";
	case "error":
		return "protocol error: " + (r.text || "");
	case "undecodable":
		return "undecodable: " + (r.text || "");
	case "controls":
		return num(r.len) + " " + (r.opcode || "control") + " frames, counted together";
	default:
		return r.preview || "";
	}
}

// Columns of the list, in order: the header's labels and the cells' classes.
export const COLUMNS = [
	["#", "c-num"], ["time", "c-time"], ["conn", "c-conn"], ["", "c-dir"], ["type", "c-type"],
	["length", "c-len"], ["flags", "c-flags"], ["preview", "c-prev"],
];

// createRow makes an empty row of the list.
export function createRow() {
	const r = el("div", {role: "row"});
	r._c = COLUMNS.map(([, cls]) => {
		const c = el("span", {className: "cell " + cls, role: "cell"});
		r.append(c);
		return c;
	});
	return r;
}

// renderRow fills a row with it (null: not loaded yet); hosts maps connection
// ids to their hosts.
export function renderRow(r, it, index, hosts) {
	const key = it ? it.id + "/" + it.flags.join(",") + "/" + (hosts.get(it.conn) || "") : "-" + index;
	if (r._key === key) return;
	r._key = key;
	const [cNum, cTime, cConn, cDir, cType, cLen, cFlags, cPrev] = r._c;
	if (!it) {
		for (const c of r._c) setText(c, "");
		setText(cPrev, "…");
		r.className = "row loading";
		r.dataset.id = "";
		return;
	}
	r.dataset.id = it.id;
	r.className = "row " + (it.dir || "") + (it.kind !== "message" ? " k-" + it.kind : "") +
		(it.opcode === "ping" || it.opcode === "pong" || it.opcode === "close" ? " control" : "");
	setText(cNum, it.id);
	setText(cTime, clock(it.time));
	const host = hosts.get(it.conn) || "";
	setText(cConn, it.conn);
	cConn.title = host;
	setText(cDir, it.dir === "c2s" ? "→" : it.dir === "s2c" ? "←" : "");
	cDir.title = it.dir === "c2s" ? "client → server" : it.dir === "s2c" ? "server → client" : "";
	setText(cType, it.kind === "message" ? it.opcode : it.kind);
	setText(cLen, it.kind === "message" || it.kind === "undecodable" ? num(it.len) : "");
	cLen.title = bytes(it.len);
	cFlags.replaceChildren(...it.flags.filter(f => !LIST_HIDDEN.has(f)).map(f => flagBadge(f, true)));
	const none = it.kind === "message" && !it.preview;
	const hold = it.kind === "message" ? holdState(it.flags) : null;
	if (hold) {
		cPrev.replaceChildren(el("span", {className: "hold s-" + hold[0], title: FLAG_INFO[hold[0] === "held" ? "held" : "released"][1]}, hold[1]),
			none ? (it.len ? "" : "(empty)") : it.preview);
		cPrev.classList.toggle("hex", !!it.preview_hex);
	} else if (it.kind === "message") {
		setText(cPrev, none ? (it.flags.includes("evicted") ? "(payload evicted)" : it.len ? "" : "(empty)") : it.preview);
		cPrev.classList.toggle("hex", !!it.preview_hex);
	} else {
		setText(cPrev, rowSummary(it));
		cPrev.classList.remove("hex");
	}
	cPrev.classList.toggle("none", none);
}
