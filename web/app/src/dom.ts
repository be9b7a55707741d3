import { ApiError, isAbort, messageOf } from './api';

// Small DOM helpers. Every value from the API goes in as text (textContent), never as HTML.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** h('td', {class: 'x', 'data-testid': 'y', onclick: fn}, 'text', child) */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'testid') {
      el.dataset.testid = String(v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'number' ? String(c) : c);
  }
  return el;
}

export function byTestId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.querySelector<T>(`[data-testid="${id}"]`);
  if (!el) throw new Error(`missing element ${id}`);
  return el;
}

export function show(el: HTMLElement, visible: boolean): void {
  el.hidden = !visible;
}

// --- the error banner: one for the whole page ---

export function showError(message: string): void {
  const banner = byTestId('error');
  byTestId('error-text').textContent = message;
  banner.hidden = false;
}

/** A caught failure in the banner; not a superseded request, nor a 401 (the sign-in form says it). */
export function reportError(e: unknown, prefix = ''): void {
  if (isAbort(e)) return;
  if (e instanceof ApiError && e.kind === 'auth') return;
  showError(prefix + messageOf(e));
}

export function clearError(): void {
  byTestId('error').hidden = true;
  byTestId('error-text').textContent = '';
}

// --- formatting ---

const intFmt = new Intl.NumberFormat('en-US');

export function fmtInt(n: number): string {
  return intFmt.format(n);
}

export function fmtScore(n: number | null | undefined): string {
  return typeof n === 'number' && Number.isFinite(n) ? n.toFixed(2) : '–';
}

/** ISO date-time → "2026-12-03 16:45 UTC" (the API's times are UTC). */
export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}
