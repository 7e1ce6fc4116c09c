// The HTTP/JSON API of docs/ui.md, as the page uses it.

// HTTPError is an answer other than 2xx: status and the server's text.
export class HTTPError extends Error {
	constructor(status, text) {
		super(text.trim() || "HTTP " + status);
		this.status = status;
	}
}

// query builds "?k=v&…" from params, leaving out empty values.
export function query(params) {
	const q = new URLSearchParams();
	for (const [k, v] of Object.entries(params || {})) {
		if (v === undefined || v === null || v === "" || v === false) continue;
		q.set(k, v === true ? "1" : String(v));
	}
	const s = q.toString();
	return s ? "?" + s : "";
}

// get fetches path with params and decodes the JSON answer.
export async function get(path, params, signal) {
	const r = await fetch(path + query(params), {credentials: "same-origin", signal, headers: {Accept: "application/json"}});
	if (!r.ok) throw new HTTPError(r.status, await r.text());
	return r.json();
}

// send sends a JSON body with method (POST, PUT) to path and decodes the JSON
// answer. An error answer of the write API is JSON ({"error": "…"}): its text
// becomes the HTTPError's message, and its other fields (rule) the error's.
export async function send(method, path, body) {
	const r = await fetch(path, {method, credentials: "same-origin",
		headers: {"Content-Type": "application/json", Accept: "application/json"}, body: JSON.stringify(body || {})});
	const text = await r.text();
	let v = null;
	try { v = JSON.parse(text); } catch { /* plain text */ }
	if (!r.ok) {
		const err = new HTTPError(r.status, v && typeof v.error === "string" ? v.error.replace(/^wstap ui: /, "") : text);
		if (v && typeof v.rule === "number") err.rule = v.rule;
		throw err;
	}
	return v;
}

// login trades the token from the URL's fragment for the UI's cookie.
export async function login(token) {
	const r = await fetch("/api/login", {method: "POST", credentials: "same-origin", headers: {"X-Wstap-Token": token}});
	if (!r.ok) throw new HTTPError(r.status, await r.text());
}

// Events follows /api/events: onState gets each state event's data, onIntercept
// each intercept event's (the breakpoint's held messages or settings changed);
// onStatus "live", "reconnecting" or "closed" (the server refused the stream: the
// token is no longer valid, or wstap stopped).
export class Events {
	constructor(onState, onStatus, onIntercept) {
		this.onState = onState;
		this.onStatus = onStatus;
		this.onIntercept = onIntercept;
		this.open();
	}

	open() {
		this.es = new EventSource("/api/events");
		this.es.addEventListener("state", ev => {
			let st;
			try { st = JSON.parse(ev.data); } catch { return; }
			this.onStatus("live");
			this.onState(st);
		});
		this.es.addEventListener("intercept", ev => {
			let st;
			try { st = JSON.parse(ev.data); } catch { return; }
			this.onIntercept?.(st);
		});
		this.es.onopen = () => this.onStatus("live");
		this.es.onerror = () => {
			if (this.es.readyState === EventSource.CLOSED) {
				this.onStatus("closed");
				// EventSource gives up on an error status; try again later.
				clearTimeout(this.retry);
				this.retry = setTimeout(() => this.open(), 3000);
			} else {
				this.onStatus("reconnecting");
			}
		};
	}

	close() {
		clearTimeout(this.retry);
		this.es.close();
	}
}
