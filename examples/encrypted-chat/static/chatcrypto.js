// The chat's wire format in the browser (WebCrypto), the same as the Go package
// chatcrypto: base64(nonce(12) || AES-256-GCM ciphertext || tag(16)) of the JSON
// {"user":"...","text":"..."}, with a fresh random nonce per message.
// WebCrypto needs a secure context: open the page as http://127.0.0.1:PORT or
// http://localhost:PORT (or https), not through another address.

// importKey turns 64 hex digits into an AES-GCM CryptoKey.
export async function importKey(hex) {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new Error("the key must be 64 hex digits (AES-256)");
  }
  const raw = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    raw[i] = parseInt(hex.substr(2 * i, 2), 16);
  }
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i++) {
    s += String.fromCharCode(bytes[i]);
  }
  return btoa(s);
}

function fromBase64(text) {
  const s = atob(text);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    bytes[i] = s.charCodeAt(i);
  }
  return bytes;
}

// seal encrypts the message object msg and returns the wire text.
export async function seal(key, msg) {
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const plaintext = new TextEncoder().encode(JSON.stringify(msg));
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce }, key, plaintext));
  const wire = new Uint8Array(nonce.length + ct.length);
  wire.set(nonce);
  wire.set(ct, nonce.length);
  return toBase64(wire);
}

// open decrypts wire text and returns the message object; it throws when the text
// is not base64, does not authenticate, or is not JSON.
export async function open(key, text) {
  const wire = fromBase64(text);
  if (wire.length < 12 + 16) {
    throw new Error("too short for nonce and tag");
  }
  const pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv: wire.subarray(0, 12) }, key, wire.subarray(12));
  return JSON.parse(new TextDecoder().decode(pt));
}
