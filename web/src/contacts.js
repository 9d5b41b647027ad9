// Contacts stay on this device (localStorage): names are personal data the ledger never needs.
const KEY = "ayni.contacts";

export function contacts() {
  try { return JSON.parse(localStorage.getItem(KEY) || "[]"); } catch { return []; }
}

export function saveContact(name, address) {
  const list = contacts().filter((c) => c.address !== address);
  list.push({ name: name.trim(), address });
  list.sort((a, b) => a.name.localeCompare(b.name));
  localStorage.setItem(KEY, JSON.stringify(list));
}

export function removeContact(address) {
  localStorage.setItem(KEY, JSON.stringify(contacts().filter((c) => c.address !== address)));
}

export const nameOf = (address) => (contacts().find((c) => c.address === address) || {}).name;
