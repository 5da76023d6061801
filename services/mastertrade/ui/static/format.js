// Formatting for display only: amounts arrive as exact decimal strings and Intl formats the
// string itself (no float round trip); times are shown in the browser's time zone.

const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const plain = new Intl.NumberFormat("en-US", { maximumFractionDigits: 8 });
const percent = new Intl.NumberFormat("en-US", { style: "percent", maximumFractionDigits: 2 });

export function amount(value, places = 8) {
  if (value === null || value === undefined || value === "") return "–";
  return places === 2 ? money.format(value) : plain.format(value);
}

export function signed(value) {
  if (value === null || value === undefined) return "–";
  const text = money.format(value);
  return String(value).startsWith("-") || Number(value) === 0 ? text : `+${text}`;
}

export function fraction(value) {
  if (value === null || value === undefined || value === "") return "–";
  return percent.format(value);
}

export function time(value) {
  if (!value) return "–";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
}

export function clock(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "–" : date.toLocaleTimeString([], { hour12: false });
}
