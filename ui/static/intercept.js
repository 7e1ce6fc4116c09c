// The breakpoint (docs/ui.md, "Intercept and inject API"): the intercept switch,
// the rules editor, the queue of held messages and the editor of the one
// selected, with Forward, Forward edited, Drop and Forward all. The queue follows
// the event stream's intercept events. Everything from the traffic is text.
import {get, send} from "./api.js";
import {el, setText, num, bytes, clock} from "./dom.js";
import {fromBase64, decodeText, textNodes, hexDump} from "./payload.js";
import {PayloadEditor, utf8Text} from "./editor.js";
import {holdState} from "./rows.js";

const $ = id => document.getElementById(id);
const RECENT = 12; // outcomes kept under the queue
const QUEUE_SHOWN = 500; // held messages listed (the oldest)

const dirText = d => d === "c2s" ? "client → server" : "server → client";
const arrow = d => d === "c2s" ? "→" : "←";

// countdown says how long until t (a Date), as m:ss.
function countdown(t) {
	const s = Math.max(0, Math.round((t - Date.now()) / 1000));
	if (s >= 3600) return Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min";
	return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

// preview is the start of a held message's payload, as one line of text.
function preview(pv) {
	const b = fromBase64(pv.base64);
	if (!pv.utf8) return {text: Array.from(b.subarray(0, 48), x => x.toString(16).padStart(2, "0")).join(" "), hex: true};
	return {text: decodeText(b.subarray(0, 400)).replace(/\s+/g, " "), hex: false};
}

export class InterceptView {
	// openMessage(id) shows a history row; onCount(n) is told how many are held.
	constructor({openMessage, onCount}) {
		this.openMessage = openMessage;
		this.onCount = onCount;
		this.version = -1;
		this.items = [];
		this.selected = null; // held id
		this.settings = null;
		this.dirty = false; // the rules or timeout were edited and not applied
		this.recent = [];
		this.known = new Map(); // held id → item, to say what became of those that left
		this.loading = false;
		this.again = false;

		this.queue = $("ic-queue");
		this.queue.addEventListener("click", ev => {
			const e = ev.target.closest(".ic-item");
			if (e) this.select(+e.dataset.id);
		});
		$("ic-enabled").addEventListener("change", () => this.setEnabled($("ic-enabled").checked));
		$("ic-add-rule").addEventListener("click", () => { this.addRule("").focus(); this.markDirty(); });
		$("ic-apply").addEventListener("click", () => this.apply());
		$("ic-revert").addEventListener("click", () => { this.dirty = false; this.shownRules = null; this.showSettings(); });
		$("ic-timeout").addEventListener("input", () => this.markDirty());
		$("ic-forward-all").addEventListener("click", () => this.forwardAll());
		this.tick = setInterval(() => this.tickDeadlines(), 1000);
		this.load();
	}

	// onEvent takes an intercept event of the stream.
	onEvent(ev) {
		if (ev.version !== this.version) this.load();
	}

	// load reads the settings and the held messages (one request at a time; a
	// change meanwhile loads again after).
	async load() {
		if (this.loading) { this.again = true; return; }
		this.loading = true;
		try {
			const [st, held] = await Promise.all([get("/api/intercept"), get("/api/intercept/held")]);
			this.settings = st;
			this.version = held.version;
			this.showSettings();
			this.showHeld(held.items);
			$("ic-error").hidden = true;
		} catch (err) {
			$("ic-error").hidden = false;
			$("ic-error").textContent = "Intercept: " + (err.message || err);
		} finally {
			this.loading = false;
			if (this.again) { this.again = false; this.load(); }
		}
	}

	// --- settings -----------------------------------------------------------------

	showSettings() {
		const st = this.settings;
		if (!st) return;
		$("ic-enabled").checked = st.enabled;
		document.body.classList.toggle("ic-on", st.enabled);
		setText($("ic-where"), st.breakpoint ? "· " + st.breakpoint : "");
		if (this.dirty) return; // never overwrite what the user is typing
		// Held messages come and go far more often than the rules change: leave
		// the rule fields (and their focus) alone unless the rules changed.
		const key = JSON.stringify([st.rules, st.timeout]);
		if (key === this.shownRules) { this.rulesNote(); return; }
		this.shownRules = key;
		const list = $("ic-rule-list");
		list.replaceChildren();
		for (const r of st.rules) this.addRule(r);
		if (!st.rules.length) this.addRule("");
		$("ic-timeout").value = st.timeout;
		this.markDirty(false);
		this.rulesNote();
	}

	rulesNote(text, bad) {
		const n = $("ic-rules-msg");
		n.className = "ic-rules-msg" + (bad ? " bad" : "");
		if (!text && this.settings) {
			const st = this.settings;
			text = !st.enabled ? "Intercept is off: nothing is held." :
				st.rules.length ? "Holding what " + (st.rules.length === 1 ? "the rule matches" : "any rule matches") + "; forwarded unchanged after " + st.timeout + " if nobody decides." :
					"Intercept is on, but there is no rule: nothing is held. Add one (dir=both holds every message).";
		}
		n.textContent = text || "";
	}

	// addRule adds an editable rule to the list, and returns its input.
	addRule(text) {
		const input = el("input", {type: "text", className: "rule mono", value: text, spellcheck: false, autocomplete: "off",
			placeholder: "e.g. dir=c2s,url=*chat*,match=transfer", "aria-label": "rule"});
		const mark = el("span", {className: "rule-mark", "aria-hidden": "true"});
		const msg = el("div", {className: "rule-msg"});
		const del = el("button", {type: "button", className: "small icon", title: "Remove this rule", "aria-label": "remove rule"}, "✕");
		const row = el("div", {className: "rule-row"}, el("div", {className: "rule-line"}, input, mark, del), msg);
		let t = 0, seq = 0;
		const check = async () => {
			const v = input.value.trim();
			const my = ++seq;
			if (!v) { row.className = "rule-row"; msg.textContent = ""; mark.textContent = ""; return; }
			try {
				const r = await send("POST", "/api/intercept/check", {rule: v});
				if (my !== seq) return;
				row.className = "rule-row ok";
				mark.textContent = "✓";
				mark.title = "valid: " + r.rule;
				msg.textContent = "";
			} catch (err) {
				if (my !== seq) return;
				row.className = "rule-row bad";
				mark.textContent = "!";
				mark.title = "";
				msg.textContent = err.message || String(err);
			}
		};
		input.addEventListener("input", () => { this.markDirty(); clearTimeout(t); t = setTimeout(check, 250); });
		input.addEventListener("keydown", ev => { if (ev.key === "Enter") { clearTimeout(t); check(); this.apply(); } });
		del.addEventListener("click", () => {
			row.remove();
			if (!$("ic-rule-list").children.length) this.addRule("");
			this.markDirty();
		});
		row._check = check;
		$("ic-rule-list").append(row);
		if (text) check();
		return input;
	}

	markDirty(on = true) {
		this.dirty = on;
		$("ic-apply").disabled = !on;
		$("ic-revert").hidden = !on;
		$("ic-rules").classList.toggle("dirty", on);
		if (on) this.rulesNote("Changed: Apply (or Enter) makes these the rules.");
	}

	async apply() {
		const rows = [...$("ic-rule-list").querySelectorAll(".rule-row")];
		const rules = rows.map(r => r.querySelector("input").value.trim()).filter(Boolean);
		const body = {rules};
		const timeout = $("ic-timeout").value.trim();
		if (timeout && timeout !== this.settings?.timeout) body.timeout = timeout;
		try {
			this.settings = await send("PUT", "/api/intercept", body);
			this.markDirty(false);
			this.shownRules = null;
			this.showSettings();
		} catch (err) {
			if (err.rule !== undefined) {
				const bad = rows.filter(r => r.querySelector("input").value.trim())[err.rule];
				bad?._check();
				bad?.querySelector("input").focus();
			}
			this.rulesNote("Not applied: " + (err.message || err), true);
		}
	}

	async setEnabled(on) {
		try {
			const body = {enabled: on};
			this.settings = await send("PUT", "/api/intercept", body);
			this.showSettings();
		} catch (err) {
			$("ic-enabled").checked = !on;
			this.rulesNote("Cannot switch intercept " + (on ? "on" : "off") + ": " + (err.message || err), true);
		}
	}

	// --- the queue ------------------------------------------------------------------

	showHeld(items) {
		const ids = new Set(items.map(it => it.id));
		// Those that left the queue: say what became of them.
		for (const [id, it] of this.known) {
			if (!ids.has(id)) {
				this.known.delete(id);
				this.settle(it);
			}
		}
		for (const it of items) this.known.set(it.id, it);
		this.items = items;
		this.onCount(items.length);
		setText($("ic-held-n"), items.length ? num(items.length) + " held" : "");
		$("ic-forward-all").disabled = !items.length;
		const q = this.queue;
		q.replaceChildren();
		if (!items.length) {
			q.append(el("p", {className: "muted pad ic-empty"}, this.settings?.enabled
				? "Nothing held. Messages the rules match wait here for you."
				: "Nothing held. Switch intercept on and add a rule to hold messages here."));
		}
		for (const it of items.slice(0, QUEUE_SHOWN)) q.append(this.itemView(it));
		if (items.length > QUEUE_SHOWN) {
			q.append(el("p", {className: "muted pad"}, "… and " + num(items.length - QUEUE_SHOWN) +
				" more, shown as those above leave the queue (Forward all sends them too)."));
		}
		if (this.selected !== null && !ids.has(this.selected)) this.selected = null;
		if (this.selected === null && items.length) this.selected = items[0].id;
		this.mark();
		this.showEditor();
	}

	itemView(it) {
		const p = preview(it.payload);
		const e = el("div", {className: "ic-item " + it.dir, role: "option", "data-id": it.id},
			el("div", {className: "ic-l1"},
				el("span", {className: "ic-arrow", title: dirText(it.dir)}, arrow(it.dir)),
				el("span", {className: "mono"}, it.conn),
				el("span", {className: "mono muted"}, it.opcode),
				el("span", {className: "muted"}, bytes(it.payload.len)),
				it.order === "strict" ? el("span", {className: "badge f-strict", title: "order=strict: its direction waits behind it"}, "strict") : null,
				el("span", {className: "spacer"}),
				el("span", {className: "ic-deadline muted", "data-deadline": it.deadline, title: "forwarded unchanged when nobody decides by then"})),
			el("div", {className: "ic-l2 mono" + (p.hex ? " hex" : "")}));
		textNodes(e.querySelector(".ic-l2"), p.text || "(empty)");
		this.fillDeadline(e.querySelector(".ic-deadline"));
		return e;
	}

	fillDeadline(span) {
		setText(span, "auto-forward in " + countdown(new Date(span.dataset.deadline)));
	}

	tickDeadlines() {
		for (const s of document.querySelectorAll("#ic-view [data-deadline]")) this.fillDeadline(s);
	}

	select(id) {
		if (this.selected === id) return;
		this.selected = id;
		this.mark();
		this.showEditor();
	}

	mark() {
		for (const e of this.queue.querySelectorAll(".ic-item")) {
			const on = +e.dataset.id === this.selected;
			e.classList.toggle("sel", on);
			e.setAttribute("aria-selected", String(on));
		}
	}

	// --- the editor -------------------------------------------------------------------

	showEditor() {
		const box = $("ic-editor");
		const it = this.items.find(x => x.id === this.selected);
		if (!it) {
			this.editing = null;
			box.replaceChildren(el("div", {className: "ic-none"},
				el("p", {}, this.items.length ? "Select a held message." : "No message is held."),
				el("p", {className: "muted"}, "A held message shows here with its connection and direction, decoded by the codecs " +
					"before the breakpoint, to forward as it is, edit and forward, or drop.")));
			return;
		}
		if (this.editing === it.id) return; // keep what the user typed
		this.editing = it.id;
		const ed = new PayloadEditor({modes: ["text", "json", "hex"], onChange: () => update(), label: "held payload"});
		const fwd = el("button", {type: "button", className: "primary", id: "ic-forward", title: "Send it on as it arrived"}, "Forward");
		const fwdEdited = el("button", {type: "button", className: "primary", id: "ic-forward-edited", title: "Send the edit on, encoded by the codecs"}, "Forward edited");
		const drop = el("button", {type: "button", className: "danger", id: "ic-drop", title: "Never send it"}, "Drop");
		const result = el("div", {className: "ic-result", role: "status"});
		const wire = fromBase64(it.wire.base64);
		const title = el("h4", {}, it.codecs.length ? "Decoded payload" : "Payload");
		const size = el("span", {className: "muted size"}, bytes(it.payload.len));
		const raw = el("input", {type: "checkbox", id: "ic-raw"});
		raw.addEventListener("change", () => {
			ed.set(raw.checked ? wire : fromBase64(it.payload.base64));
			title.textContent = raw.checked ? "Wire payload (raw)" : "Decoded payload";
			size.textContent = bytes(raw.checked ? it.wire.len : it.payload.len);
			fwdEdited.title = raw.checked ? "Send these bytes as the wire payload, past the hooks and codecs" : "Send the edit on, encoded by the codecs";
		});
		const update = () => {
			const edited = ed.edited();
			fwdEdited.disabled = !edited || !!ed.read().error;
			fwd.textContent = edited ? "Forward original" : "Forward";
			box.querySelector(".ic-ed")?.classList.toggle("edited", edited);
		};
		const act = async (what, path, body) => {
			for (const b of [fwd, fwdEdited, drop]) b.disabled = true;
			result.className = "ic-result";
			result.textContent = what + "…";
			try {
				await send("POST", path, body);
				this.outcome(it, what === "Dropping" ? "dropped" : body && Object.keys(body).length ? "forwarded edited" : "forwarded");
				this.load();
			} catch (err) {
				result.className = "ic-result bad";
				result.textContent = (err.status === 404 || err.status === 409 ? "No longer held: " : "") + (err.message || err);
				for (const b of [fwd, drop]) b.disabled = false;
				update();
				if (err.status === 404 || err.status === 409) this.load();
			}
		};
		fwd.addEventListener("click", () => act("Forwarding", `/api/intercept/held/${it.id}/forward`, {}));
		fwdEdited.addEventListener("click", () => {
			const p = ed.payload();
			if (p.error) return;
			act("Forwarding the edit", `/api/intercept/held/${it.id}/forward`, raw.checked ? {...p, raw: true} : p);
		});
		// Ctrl+Enter in the editor forwards: the edit when there is one.
		ed.area.addEventListener("keydown", ev => {
			if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
				ev.preventDefault();
				(fwdEdited.disabled ? fwd : fwdEdited).click();
			}
		});
		drop.addEventListener("click", () => act("Dropping", `/api/intercept/held/${it.id}/drop`, {}));

		const url = el("span", {className: "mono ic-url", title: it.url});
		textNodes(url, it.url || "");
		const codecs = it.codecs.length
			? ["Decoded by ", el("b", {}, it.codecs.join(" → ")), ": you edit the plaintext, and the codecs encode it again on the way out."]
			: ["No codec decodes this connection: you edit the payload as it goes on the wire."];
		const wireBody = el("div", {className: "ic-wire-body"});
		const wireText = it.wire.utf8 ? utf8Text(wire) : null;
		if (wireText !== null) {
			const pre = el("pre", {className: "payload text"});
			textNodes(pre, wireText);
			wireBody.append(pre);
		} else {
			wireBody.append(hexDump(wire));
		}
		box.replaceChildren(el("div", {className: "ic-ed", "data-id": it.id},
			el("div", {className: "md-head"},
				el("span", {className: "dir " + it.dir}, dirText(it.dir)),
				el("span", {className: "mono"}, it.opcode),
				el("span", {className: "mono"}, it.conn), url,
				el("span", {className: "muted"}, "seq " + it.seq),
				el("span", {className: "muted", title: it.held_at}, "held at " + clock(it.held_at)),
				el("span", {className: "ic-deadline muted", "data-deadline": it.deadline, title: "forwarded unchanged at " + clock(it.deadline)})),
			el("div", {className: "md-note info"}, ...codecs, " ",
				el("span", {className: "muted"}, "Rule ", el("code", {}, it.rule || "?"), ", order " + it.order +
					(it.order === "strict" ? ": its direction waits behind it." : ": later messages go on, and this one is sent out of order."))),
			el("div", {className: "part ic-part"},
				el("div", {className: "part-head"}, title, size, el("span", {className: "spacer"}),
					it.codecs.length ? el("label", {className: "check muted", title: "Edit the bytes as they arrived instead, and send them past the hooks and codecs"},
						raw, " raw") : null,
					ed.seg),
				ed.root),
			el("div", {className: "ic-actions"}, fwd, fwdEdited, drop, el("span", {className: "keys muted"}, "Ctrl+Enter forwards"),
				el("span", {className: "spacer"}), result),
			el("details", {className: "ic-wire"},
				el("summary", {}, "Wire payload as it arrived (" + bytes(it.wire.len) + (it.codecs.length ? ", before the codecs" : "") + ")"),
				wireBody)));
		this.fillDeadline(box.querySelector(".ic-deadline"));
		ed.set(fromBase64(it.payload.base64));
	}

	async forwardAll() {
		const btn = $("ic-forward-all");
		btn.disabled = true;
		try {
			await send("POST", "/api/intercept/forward-all", {});
			for (const it of this.items) if (this.known.has(it.id)) this.outcome(it, "forwarded");
		} catch (err) {
			this.rulesNote("Forward all: " + (err.message || err), true);
		}
		this.load();
	}

	// --- outcomes -----------------------------------------------------------------------

	// outcome records what the user did with a held message, then reads its
	// release from the history (which says more: sent out of order).
	outcome(it, text) {
		this.known.delete(it.id);
		this.settle(it, text, text.startsWith("dropped") ? "dropped" : "forwarded");
	}

	// settle finds, in the history, what became of a held message that left the
	// queue (forwarded, dropped, timed out, its connection ended).
	async settle(it, text = "left the queue", cls = "muted") {
		const entry = this.addRecent(it, text, cls);
		for (let i = 0; i < 10; i++) {
			try {
				const res = await get("/api/messages", {conn: it.conn, dir: it.dir, flags: "released", control: true, limit: 5000});
				const row = res.items.find(r => r.held_seq === it.seq);
				if (row) {
					const [cls, text] = holdState(row.flags);
					entry.set(text, cls, row.id);
					return;
				}
			} catch { /* try again */ }
			await new Promise(r => setTimeout(r, 300));
		}
	}

	addRecent(it, text, cls) {
		const label = el("span", {className: "ic-out"});
		const e = el("div", {className: "ic-recent " + it.dir},
			el("span", {className: "ic-arrow"}, arrow(it.dir)),
			el("span", {className: "mono"}, it.conn + " seq " + it.seq),
			label, el("span", {className: "spacer"}), el("span", {className: "muted mono"}, clock(new Date().toISOString())));
		const entry = {
			set: (t, c, rowId) => {
				label.className = "ic-out s-" + c;
				setText(label, t);
				if (rowId !== undefined) {
					e.classList.add("link");
					e.title = "Show it in the history (#" + rowId + ")";
					e.onclick = () => this.openMessage(rowId);
				}
			},
		};
		entry.set(text, cls);
		const log = $("ic-log");
		log.prepend(e);
		while (log.children.length > RECENT) log.lastChild.remove();
		$("ic-log-head").hidden = false;
		return entry;
	}
}
