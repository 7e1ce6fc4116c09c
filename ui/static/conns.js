// The connections list, and a connection's summary and handshake.
import {el, setText, num, bytes, duration, clock, stamp, copyText} from "./dom.js";
import {textNodes} from "./payload.js";

// stateText says what became of a connection: "open", "closed 1000 by client",
// "refused 403".
export function stateText(c) {
	switch (c.state) {
	case "closed": {
		let s = "closed";
		if (c.close_code) s += " " + c.close_code;
		if (c.close_by) s += " by " + c.close_by;
		return s;
	}
	case "refused":
		return "refused" + (c.status ? " " + c.status : "");
	default:
		return c.state || "open";
	}
}

// hostOf returns the host of a WebSocket URL ("" when it does not parse).
export function hostOf(u) {
	try { return new URL(u).host; } catch { return ""; }
}

// ConnList is the list of connections, with an "all connections" entry first.
// Entries are updated in place: a refresh touches only the text that changed.
export class ConnList {
	constructor(root, onSelect) {
		this.root = root;
		this.items = new Map(); // id → element
		this.selected = "";
		this.all = el("div", {className: "conn all", role: "option", "data-id": ""},
			el("div", {className: "c1"}, el("span", {className: "c-url"}, "All connections")),
			el("div", {className: "c2"}, this.allInfo = el("span", {}, "")));
		root.append(this.all);
		root.addEventListener("click", ev => {
			const e = ev.target.closest(".conn");
			if (e) onSelect(e.dataset.id || "");
		});
	}

	// update shows conns (oldest first) and the number of connections the filter
	// selects and the list leaves out (older than those shown).
	update(conns, total, omitted) {
		const seen = new Set();
		let prev = this.all;
		for (const c of conns) {
			seen.add(c.id);
			let e = this.items.get(c.id);
			if (!e) {
				e = this.create(c);
				this.items.set(c.id, e);
			}
			if (prev.nextSibling !== e) prev.after(e);
			this.fill(e, c);
			prev = e;
		}
		for (const [id, e] of this.items) {
			if (!seen.has(id)) { e.remove(); this.items.delete(id); }
		}
		setText(this.allInfo, num(total) + (total === 1 ? " connection" : " connections") +
			(omitted ? " (the " + num(omitted) + " oldest not listed)" : ""));
		this.mark();
	}

	create(c) {
		const e = el("div", {className: "conn", role: "option", "data-id": c.id});
		e._f = {
			dot: el("span", {className: "dot"}),
			id: el("span", {className: "c-id"}),
			url: el("span", {className: "c-url"}),
			state: el("span", {className: "c-state"}),
			time: el("span", {className: "c-time"}),
			up: el("span", {className: "c-up", title: "client → server: messages, bytes"}),
			down: el("span", {className: "c-down", title: "server → client: messages, bytes"}),
			meta: el("div", {className: "c3"}),
		};
		const f = e._f;
		f.addrs = el("div", {className: "c3"});
		e.append(el("div", {className: "c1"}, f.dot, f.id, f.url),
			el("div", {className: "c2"}, f.state, f.time), el("div", {className: "c2"}, f.up, f.down), f.meta, f.addrs);
		return e;
	}

	fill(e, c) {
		const f = e._f;
		const key = JSON.stringify(c);
		if (e._key === key) return;
		e._key = key;
		f.dot.className = "dot " + c.state;
		setText(f.id, c.id);
		f.url.replaceChildren();
		textNodes(f.url, c.url || "(no URL)");
		setText(f.state, stateText(c));
		f.state.className = "c-state " + c.state;
		setText(f.time, clock(c.opened) + " · " + duration(c.duration_ms));
		setText(f.up, "→ " + num(c.messages[0]) + " msgs · " + bytes(c.bytes[0]));
		setText(f.down, "← " + num(c.messages[1]) + " msgs · " + bytes(c.bytes[1]));
		const meta = [c.mode, c.subprotocol && "protocol " + c.subprotocol, c.extensions].filter(Boolean).join(" · ");
		const addrs = c.client || c.server ? (c.client || "?") + " → " + (c.server || "?") : "";
		setText(f.meta, meta);
		setText(f.addrs, addrs);
		e.title = [c.url, stateText(c) + (c.close_reason ? " (" + c.close_reason + ")" : ""), "opened " + stamp(c.opened), meta, addrs].join("\n");
	}

	select(id) {
		this.selected = id || "";
		this.mark();
	}

	mark() {
		this.all.classList.toggle("sel", this.selected === "");
		this.all.setAttribute("aria-selected", String(this.selected === ""));
		for (const [id, e] of this.items) {
			e.classList.toggle("sel", id === this.selected);
			e.setAttribute("aria-selected", String(id === this.selected));
		}
	}

	scrollToSelected() {
		const e = this.selected ? this.items.get(this.selected) : this.all;
		e?.scrollIntoView({block: "nearest"});
	}
}

// requestText is the upgrade request as the server received it.
export function requestText(h) {
	const lines = [];
	if (h.method) lines.push(h.method + " " + h.target + " " + (h.proto || "HTTP/1.1"));
	for (const hd of h.request_headers || []) for (const v of hd.values) lines.push(hd.name + ": " + v);
	return lines.join("\r\n") + "\r\n";
}

// responseText is the server's answer to the upgrade.
export function responseText(h) {
	const lines = [];
	if (h.status) lines.push((h.response_proto || "HTTP/1.1") + " " + h.status + (h.reason ? " " + h.reason : ""));
	for (const hd of h.response_headers || []) for (const v of hd.values) lines.push(hd.name + ": " + v);
	return lines.join("\r\n") + "\r\n";
}

// httpBlock shows a request or response: the first line, then "Name: value" lines,
// the names in their own spans.
function httpBlock(first, headers, cls) {
	const pre = el("pre", {className: "http " + cls});
	if (first) {
		const f = el("span", {className: "h-first"});
		textNodes(f, first);
		pre.append(f, "\n");
	}
	for (const hd of headers || []) {
		for (const v of hd.values) {
			const row = el("span", {className: "h-line", "data-name": hd.name.toLowerCase()});
			row.append(el("span", {className: "h-name"}, hd.name), ": ");
			const val = el("span", {className: "h-value"});
			textNodes(val, v);
			row.append(val);
			pre.append(row, "\n");
		}
	}
	return pre;
}

// handshakeView shows a connection (ConnDetail of the API): its summary, the
// upgrade request with every header, and the response.
export function handshakeView(d) {
	const h = d.handshake || {};
	const sum = el("div", {className: "summary"});
	const add = (k, v, wide) => {
		const val = el("span", {className: "v"});
		textNodes(val, v === "" || v === undefined || v === null ? "—" : String(v));
		sum.append(el("div", {className: "kv" + (wide ? " wide" : "")}, el("span", {className: "k"}, k), val));
	};
	add("URL", d.url, true);
	add("State", stateText(d) + (d.close_reason ? " — " + d.close_reason : ""));
	add("Duration", duration(d.duration_ms));
	add("Opened", stamp(d.opened));
	add("Closed", d.closed ? stamp(d.closed) : "");
	add("Client → server", num(d.messages[0]) + " messages, " + bytes(d.bytes[0]));
	add("Server → client", num(d.messages[1]) + " messages, " + bytes(d.bytes[1]));
	add("Client", d.client);
	add("Server", d.server);
	add("Subprotocol", d.subprotocol);
	add("Mode", d.mode);
	add("Extensions", d.extensions, true);

	const req = requestText(h), resp = responseText(h);
	const copy = (label, text) => {
		const b = el("button", {className: "small", title: "Copy to the clipboard"}, label);
		b.addEventListener("click", () => copyText(text, b));
		return b;
	};
	const known = h.method || (h.request_headers || []).length;
	return el("div", {className: "handshake"},
		el("div", {className: "hs-head"}, el("h3", {}, "Connection ", el("span", {className: "mono"}, d.id))),
		sum,
		el("div", {className: "hs-parts"}, el("div", {className: "hs-part"},
			el("div", {className: "part-head"}, el("h4", {}, "Request", el("span", {className: "muted"}, " as the server received it")),
				el("span", {className: "spacer"}), known ? copy("copy request", req) : null),
			known ? httpBlock(h.method ? h.method + " " + h.target + " " + (h.proto || "HTTP/1.1") : "", h.request_headers, "req")
				: el("p", {className: "muted pad"}, "The handshake was not seen (the capture began after it).")),
		el("div", {className: "hs-part"},
			el("div", {className: "part-head"}, el("h4", {}, "Response"),
				el("span", {className: "spacer"}), h.status ? copy("copy response", resp) : null),
			h.status ? httpBlock((h.response_proto || "HTTP/1.1") + " " + h.status + (h.reason ? " " + h.reason : ""), h.response_headers, "resp")
				: el("p", {className: "muted pad"}, "No response seen."))));
}
