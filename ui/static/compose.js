// The composer: a new message on a live connection, to the server or to the
// client (POST /api/connections/ID/inject), or a message of the history sent
// again, edited or not (POST /api/messages/ID/resend). Payloads are plaintext the
// codecs encode, unless "raw" sends them as the wire payload.
import {send} from "./api.js";
import {el} from "./dom.js";
import {fromBase64, textNodes} from "./payload.js";
import {PayloadEditor} from "./editor.js";

const dirText = d => d === "c2s" ? "to the server (client → server)" : "to the client (server → client)";

// The composer keeps its draft between visits to the tab (per connection and
// direction), and the resend it was opened for.
const drafts = new Map();

// composeConnChanged tells the composer box shows that its connection is now
// conn (a ConnView): one that closed can send nothing more.
export function composeConnChanged(box, conn) {
	if (!box?.classList.contains("compose") || box.dataset.conn !== conn.id || conn.state === "open" || box.dataset.closed) return;
	box.dataset.closed = "1";
	const st = box.querySelector(".md-head .c-state");
	if (st) { st.textContent = conn.state; st.className = "c-state " + conn.state; }
	box.querySelector("#compose-send").disabled = true;
	box.querySelector(".md-head").after(el("div", {className: "md-note warn"}, "This connection is " + conn.state + ": nothing can be sent on it."));
}

// composeView shows the composer for conn (a ConnView, or null) or, with
// resend (a message detail of the API), for sending that message again.
// onSent is called after a message went out.
export function composeView(conn, resend, {onCancelResend, onSent}) {
	if (!conn && !resend) {
		return el("p", {className: "muted pad"}, "Select a connection (or a message) to send a message on it.");
	}
	const connID = resend ? resend.conn : conn.id;
	const open = conn ? conn.state === "open" : true;
	let dir = resend ? resend.dir : drafts.get(connID)?.dir || "c2s";
	let opcode = resend ? resend.opcode : "text";
	let opcodeSet = false; // the user picked the opcode: the format no longer does

	const ed = new PayloadEditor({modes: ["text", "json", "hex", "base64"], onChange: () => update(), label: "message to send",
		showEdited: !!resend});
	const dirSeg = el("div", {className: "seg", role: "group", "aria-label": "direction"});
	const dirButtons = {};
	for (const d of ["c2s", "s2c"]) {
		const b = el("button", {type: "button", className: "small", "data-dir": d}, d === "c2s" ? "→ to the server" : "← to the client");
		b.disabled = !!resend;
		b.addEventListener("click", () => { dir = d; update(); });
		dirButtons[d] = b;
		dirSeg.append(b);
	}
	const opSel = el("select", {className: "small", "aria-label": "opcode", title: "The message's opcode"},
		el("option", {value: "text"}, "text message"), el("option", {value: "binary"}, "binary message"));
	opSel.disabled = !!resend;
	opSel.addEventListener("change", () => { opcode = opSel.value; opcodeSet = true; update(); });
	const raw = el("input", {type: "checkbox", className: "raw"});
	raw.addEventListener("change", () => update());
	const sendBtn = el("button", {type: "button", className: "primary", id: "compose-send"}, resend ? "Send again" : "Send");
	const result = el("div", {className: "ic-result", role: "status"});
	const hint = el("span", {className: "muted size"});

	let origRaw = false;
	let box = null;
	if (resend) {
		const parts = resend.parts || {};
		const src = parts.decoded || parts.payload;
		origRaw = !parts.decoded;
		raw.checked = origRaw;
		ed.set(fromBase64(src?.base64 || ""));
	} else {
		const d = drafts.get(connID);
		ed.set(d ? d.bytes : new Uint8Array(0), d ? d.mode : "text");
	}

	function update() {
		for (const [d, b] of Object.entries(dirButtons)) {
			b.classList.toggle("on", d === dir);
			b.setAttribute("aria-pressed", String(d === dir));
		}
		if (!opcodeSet && !resend) opcode = ed.isText() ? "text" : "binary";
		opSel.value = opcode;
		const r = ed.read();
		sendBtn.disabled = !open || !!r.error || !!box?.dataset.closed;
		if (resend) sendBtn.textContent = ed.edited() || raw.checked !== origRaw ? "Send edited" : "Send again";
		if (!resend && !r.error) drafts.set(connID, {dir, mode: ed.mode, bytes: r.bytes});
		hint.textContent = raw.checked ? "the wire payload: sent as it is, past the codecs"
			: "plaintext: the codecs encode it; permessage-deflate is wstap's business";
	}

	sendBtn.addEventListener("click", async () => {
		const p = ed.payload();
		if (p.error) return;
		sendBtn.disabled = true;
		result.className = "ic-result";
		result.textContent = "Sending…";
		try {
			if (resend) {
				const same = !ed.edited() && raw.checked === origRaw;
				await send("POST", `/api/messages/${resend.id}/resend`, same ? {} : {...p, raw: raw.checked});
			} else {
				await send("POST", `/api/connections/${encodeURIComponent(connID)}/inject`, {...p, dir, opcode, raw: raw.checked});
			}
			result.className = "ic-result ok";
			result.textContent = "Sent " + (dir === "c2s" ? "to the server" : "to the client") + " at " + new Date().toLocaleTimeString() +
				": it shows in the history as injected.";
			onSent?.();
		} catch (err) {
			result.className = "ic-result bad";
			result.textContent = "Not sent: " + (err.message || err);
		} finally {
			update();
		}
	});

	const url = el("span", {className: "mono ic-url", title: conn?.url || ""});
	textNodes(url, conn?.url || "");
	const head = el("div", {className: "md-head"},
		el("b", {}, resend ? "Resend #" + resend.id : "New message"),
		el("span", {className: "mono"}, connID), url,
		conn ? el("span", {className: "c-state " + conn.state}, conn.state) : null,
		resend ? el("span", {className: "dir " + dir}, dirText(dir)) : null,
		resend ? el("span", {className: "spacer"}) : null,
		resend ? el("button", {type: "button", className: "small", onclick: onCancelResend}, "new message instead") : null);
	const notes = [];
	if (!open) notes.push(el("div", {className: "md-note warn"}, "This connection is " + conn.state + ": nothing can be sent on it."));
	if (resend) {
		notes.push(el("div", {className: "md-note info"}, "The same " + resend.opcode + " message again, in the same direction: ",
			resend.parts?.decoded ? "its decoded payload, encoded again by the codecs (aes: a fresh nonce)." : "its payload as it went on the wire.",
			" Edit it first if you like."));
	}
	box = el("div", {className: "compose", "data-conn": connID}, head, ...notes,
		el("div", {className: "compose-opts"},
			resend ? null : dirSeg,
			el("label", {className: "check", title: "The message's opcode: text messages must be UTF-8"}, opSel),
			el("label", {className: "check", title: "Send the bytes as the wire payload, past the codecs (no encoding)"}, raw,
				" raw"),
			sendBtn, result),
		el("div", {className: "part ic-part"},
			el("div", {className: "part-head"}, el("h4", {}, "Payload"), hint, el("span", {className: "spacer"}), ed.seg),
			ed.root));
	update();
	return box;
}
