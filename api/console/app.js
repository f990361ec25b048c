/*
 * mailhook console: plain JavaScript over mailhook-api's /v1 endpoints (docs/api.md).
 * The bearer token typed on the sign-in view lives in this tab's sessionStorage; every
 * data call sends it, and any 401 drops it and shows the sign-in view again, with every
 * view emptied. Text from the API is only ever set as textContent, never as HTML.
 */
'use strict';

const EVENT_TYPES = [
  'email.accepted', 'email.sent', 'email.delivered', 'email.delivery_delayed', 'email.bounced',
  'email.complained', 'email.opened', 'email.clicked', 'email.unsubscribed', 'email.resubscribed',
  'email.suppressed', 'email.failed', 'email.held', 'email.scheduled', 'email.received',
  'email.auto_reply', 'domain.created', 'domain.updated', 'domain.deleted', 'domain.verified',
  'domain.dns_error', 'contact.created', 'contact.updated', 'contact.deleted',
  'account.send_limit', 'other',
];
const VIEWS = ['events', 'suppressions', 'dead-letters', 'sources'];
const PALETTE = ['#2452c6', '#d9480f', '#2b8a3e', '#ae3ec9', '#e8590c', '#1098ad', '#c2255c',
  '#5c940d', '#862e9c', '#495057'];
const TYPE_COLORS = { 'email.delivered': '#2b8a3e', 'email.bounced': '#e03131', 'email.complained': '#ae3ec9',
  'email.opened': '#2452c6', 'email.clicked': '#1098ad', 'email.delivery_delayed': '#f08c00',
  'email.unsubscribed': '#495057', 'email.sent': '#74b816', 'email.accepted': '#94d82d' };
const STATUS_COLORS = { 200: '#2b8a3e', 400: '#f59f00', 401: '#e03131', 403: '#c2255c',
  404: '#868e96', 413: '#ae3ec9', 429: '#1098ad', 503: '#5f3dc4' };

const $ = (sel, root) => (root || document).querySelector(sel);
const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

/* ---- session ------------------------------------------------------------------------- */

const session = {
  get token() { return sessionStorage.getItem('mailhook.token') || ''; },
  get tenant() { return sessionStorage.getItem('mailhook.tenant') || ''; },
  set(token, tenant) {
    sessionStorage.setItem('mailhook.token', token);
    sessionStorage.setItem('mailhook.tenant', tenant);
  },
  clear() {
    sessionStorage.removeItem('mailhook.token');
    sessionStorage.removeItem('mailhook.tenant');
  },
};

class Unauthorized extends Error {}
class ApiError extends Error {
  constructor(status, message, body) { super(message); this.status = status; this.body = body; }
}

/* One call to the API. A 401 signs out (and throws Unauthorized); other errors throw
 * ApiError with the API's {"error"} text. */
async function api(method, path, params, body, tokenOverride) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {}))
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  const headers = { Authorization: 'Bearer ' + (tokenOverride || session.token) };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    throw new ApiError(0, 'mailhook-api cannot be reached (' + e.message + ')');
  }
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (res.status === 401) {
    if (!tokenOverride) signOut('The token was refused. Sign in again.');
    throw new Unauthorized('unauthorized');
  }
  if (!res.ok) {
    const msg = data && data.error ? data.error : res.status + ' ' + res.statusText;
    throw new ApiError(res.status, msg, data);
  }
  return { status: res.status, data };
}

/* ---- small DOM helpers --------------------------------------------------------------- */

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function setStatus(node, text, kind) {
  node.textContent = text || '';
  node.className = 'status' + (kind ? ' ' + kind : '');
}

/* What went wrong, for the view's status line; a 401 has already signed out. */
function failed(node, err) {
  if (err instanceof Unauthorized) return;
  setStatus(node, err.message, 'error');
}

function fmtTime(iso) {
  if (!iso) return '—';
  return String(iso).replace('T', ' ').replace(/\.\d+Z$|Z$/, '');
}

function typeBadge(type) {
  const kind = (type || '').split('.').pop();
  return el('span', { class: 'badge t-' + kind.replace(/[^a-z_]/g, ''), text: type || '—' });
}

function formValues(form) {
  const out = {};
  for (const [k, v] of new FormData(form).entries()) out[k] = String(v).trim();
  return out;
}

/* datetime-local (read as UTC) to RFC 3339. */
function toRfc3339(local) {
  if (!local) return '';
  return (local.length === 16 ? local + ':00' : local) + 'Z';
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/* The confirmation dialog; resolves true when the operator confirms. */
function confirmAction(title, text, okLabel) {
  const d = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = okLabel || 'Confirm';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = '';
    d.showModal();
    $('#confirm-cancel').focus();
  });
}

/* ---- views and routing --------------------------------------------------------------- */

function clearData() {
  for (const tb of $$('table.data tbody')) tb.replaceChildren();
  for (const sel of ['#event-detail', '#lookup-result', '#sources-list', '#replay-progress'])
    $(sel).replaceChildren();
  $('#event-detail').hidden = true;
  for (const s of $$('.status, #add-result')) s.textContent = '';
  for (const b of $$('.more .btn')) b.hidden = true;
  state.events = []; state.supps = []; state.dlq = [];
}

function showLogin(message) {
  clearData();
  for (const v of $$('.view')) v.hidden = true;
  $('#nav').hidden = true;
  $('#session').hidden = true;
  $('#view-login').hidden = false;
  const err = $('#login-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('#login-token').value = '';
  $('#login-token').focus();
}

function signOut(message) {
  session.clear();
  stopReplayPolling();
  showLogin(message);
}

function currentView() {
  const m = location.hash.match(/^#\/([a-z-]+)/);
  return m && VIEWS.includes(m[1]) ? m[1] : 'events';
}

function hashParams() {
  const i = location.hash.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : location.hash.slice(i + 1));
}

function route() {
  if (!session.token) { showLogin(); return; }
  const view = currentView();
  $('#view-login').hidden = true;
  $('#nav').hidden = false;
  $('#session').hidden = false;
  $('#session-scope').textContent = session.tenant ? 'tenant ' + session.tenant : 'all tenants';
  for (const v of VIEWS) $('#view-' + v).hidden = v !== view;
  for (const a of $$('#nav a')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = $('#nav a[data-view="' + view + '"]').textContent + ' · mailhook console';
  enter[view](hashParams());
}

const state = { events: [], eventsCursor: null, eventsQuery: null, supps: [], suppsCursor: null,
  suppsQuery: null, dlq: [], dlqCursor: null, dlqQuery: null, entered: {} };

/* Fills a form's empty tenant field with the session's tenant. */
function defaultTenant(input) {
  if (!input.value && session.tenant) input.value = session.tenant;
}

const enter = {
  events(params) {
    defaultTenant($('#ev-tenant'));
    const form = $('#events-form');
    // A link into the events (#/events?recipient=...&event_id=...) replaces the search.
    const given = [...params.keys()].length > 0;
    if (given) {
      for (const f of form.elements) if (f.name) f.value = '';
      for (const [k, v] of params.entries()) if (form.elements[k]) form.elements[k].value = v;
    }
    if (given || !state.entered.events) searchEvents(params.get('event_id'));
    state.entered.events = true;
  },
  suppressions() {
    for (const id of ['#lk-tenant', '#add-tenant', '#sl-tenant']) defaultTenant($(id));
    if (!state.entered.suppressions) listSuppressions();
    state.entered.suppressions = true;
  },
  'dead-letters'() {
    defaultTenant($('#dl-tenant'));
    if (!state.entered.dlq) listDeadLetters();
    state.entered.dlq = true;
  },
  sources() {
    loadSources();
  },
};

/* ---- sign in ------------------------------------------------------------------------- */

async function signIn(ev) {
  ev.preventDefault();
  const token = $('#login-token').value.trim();
  const tenant = $('#login-tenant').value.trim();
  const err = $('#login-error');
  err.hidden = true;
  if (!token) { err.textContent = 'Enter a token.'; err.hidden = false; return; }
  try {
    // A one-row list checks the token (401) and the tenant scope (403) at once.
    await api('GET', '/v1/suppressions', { tenant, limit: 1 }, undefined, token);
  } catch (e) {
    err.hidden = false;
    if (e instanceof Unauthorized) err.textContent = 'This token is not accepted by mailhook-api.';
    else if (e.status === 403) err.textContent = tenant ? e.message
      : 'This token acts for some tenants only: enter one of them.';
    else err.textContent = e.message;
    $('#login-token').focus();
    return;
  }
  session.set(token, tenant);
  $('#login-token').value = '';
  state.entered = {};
  route();
  $('#main').focus();
}

/* ---- events -------------------------------------------------------------------------- */

function eventsQuery() {
  const v = formValues($('#events-form'));
  return {
    api: { tenant: v.tenant, recipient: v.recipient, message_id: v.message_id, type: v.type,
      source: v.source, provider: v.provider, since: toRfc3339(v.since), until: toRfc3339(v.until) },
  };
}

async function searchEvents(selectId) {
  state.eventsQuery = eventsQuery();
  state.events = [];
  state.eventsCursor = null;
  $('#events-table tbody').replaceChildren();
  $('#event-detail').hidden = true;
  await moreEvents(selectId);
}

async function moreEvents(selectId) {
  const q = state.eventsQuery;
  const status = $('#events-status');
  setStatus(status, 'Loading…');
  try {
    const { data } = await api('GET', '/v1/events', { ...q.api, cursor: state.eventsCursor });
    state.events.push(...data.items);
    state.eventsCursor = data.next_cursor;
    const tbody = $('#events-table tbody');
    for (const e of data.items) tbody.append(eventRow(e));
    $('#events-more').hidden = !data.next_cursor;
    const n = state.events.length;
    setStatus(status, n ? n + ' event' + (n === 1 ? '' : 's') + (data.next_cursor ? ' (more available)' : '')
      : 'No events match.', n ? '' : 'empty');
    const pick = selectId && state.events.find((e) => e.event_id === selectId);
    if (pick) showEvent(pick);
  } catch (e) { failed(status, e); }
}

function eventRow(e) {
  const open = el('button', { type: 'button', class: 'link', onclick: () => showEvent(e),
    text: fmtTime(e.occurred_at || e.received_at), title: 'Show this event' });
  const msg = e.message_id ? el('button', { type: 'button', class: 'link mono ellipsis',
    onclick: () => showTimeline(e), text: e.message_id, title: 'Timeline of ' + e.message_id }) : '—';
  const tr = el('tr', { 'data-event-id': e.event_id },
    el('td', { class: 'nowrap' }, open),
    el('td', {}, typeBadge(e.type)),
    el('td', { class: 'ellipsis', title: e.recipient || '' }, e.recipient || '—'),
    el('td', {}, e.source, el('span', { class: 'sub' }, e.provider)),
    el('td', {}, e.tenant),
    el('td', { class: 'ellipsis' }, msg));
  return tr;
}

function markSelected(tableSel, key, value) {
  for (const tr of $$(tableSel + ' tbody tr'))
    tr.classList.toggle('selected', tr.getAttribute(key) === value);
}

function dl(pairs) {
  const d = el('dl', { class: 'kv' });
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === '') continue;
    d.append(el('dt', {}, k), el('dd', {}, v instanceof Node ? v : String(v)));
  }
  return d;
}

function showEvent(e) {
  markSelected('#events-table', 'data-event-id', e.event_id);
  const box = $('#event-detail');
  const b = e.bounce || {};
  const raw = e.raw || {};
  box.replaceChildren(
    el('div', { class: 'detail-head' }, el('h2', {}, 'Event'), typeBadge(e.type),
      el('button', { type: 'button', class: 'btn btn-ghost close', 'aria-label': 'Close details',
        onclick: () => { box.hidden = true; } }, '×')),
    dl([['Event id', el('code', {}, e.event_id)], ['Occurred', fmtTime(e.occurred_at)],
      ['Received', fmtTime(e.received_at)], ['Recipient', e.recipient], ['Tenant', e.tenant],
      ['Source', e.source], ['Provider', e.provider], ['Provider event', e.provider_event],
      ['Message id', e.message_id],
      ['Bounce', e.bounce ? [b.class, b.category, b.smtp_code, b.enhanced_code].filter(Boolean).join(' · ') : ''],
      ['Diagnostic', b.diagnostic]]),
    el('h3', {}, 'Raw record'),
    e.raw ? dl([['Topic', el('code', {}, raw.topic)], ['Partition', raw.partition], ['Offset', raw.offset],
      ['Replay it', el('code', { class: 'cli' }, 'mailhook replay --from-offsets ' + raw.partition + ':' +
        raw.offset + ' --until ' + raw.partition + ':' + (raw.offset + 1) + ' --to-topic TOPIC')]])
      : el('p', { class: 'muted' }, 'No raw record coordinates on this event.'),
    e.raw ? el('div', { class: 'raw-body' }, el('button', { type: 'button', class: 'btn', id: 'raw-body-open',
      onclick: (ev) => showRawBody(ev.currentTarget.parentNode, raw) }, 'Raw body')) : '',
    e.message_id ? el('button', { type: 'button', class: 'btn', onclick: () => showTimeline(e) },
      'Message timeline') : '',
    el('h3', {}, 'Canonical JSON'),
    el('pre', { class: 'json', tabindex: '0', 'aria-label': 'Canonical JSON' }, JSON.stringify(e, null, 2)));
  box.hidden = false;
}

/* The raw record's body (GET /v1/raw) under the button, as text: never parsed as HTML. */
async function showRawBody(box, raw) {
  const out = el('div', { class: 'raw-result', role: 'status' }, el('p', { class: 'muted' }, 'Loading…'));
  box.replaceChildren(out);
  try {
    const { data } = await api('GET', '/v1/raw/' + encodeURIComponent(raw.partition) + '/' +
      encodeURIComponent(raw.offset), { topic: raw.topic });
    const binary = data.body === undefined;
    out.replaceChildren(
      el('h3', {}, 'Raw body'),
      dl([['Content type', data.content_type], ['Received', fmtTime(data.received_at)],
        ['Request id', data.request_id ? el('code', {}, data.request_id) : ''], ['Source', data.source],
        ['Size', data.body_bytes + ' bytes' + (data.truncated ? ' (cut to what is shown)' : '') +
          (binary ? ', not UTF-8: shown as base64' : '')]]),
      el('pre', { class: 'json raw', tabindex: '0', 'aria-label': 'Raw body' },
        binary ? data.body_base64 : data.body));
  } catch (err) {
    if (err instanceof Unauthorized) return;
    const why = err.status === 403 ? 'This token may not read this raw record.' : err.message;
    out.replaceChildren(el('h3', {}, 'Raw body'), el('p', { class: 'error' }, why));
  }
}

async function showTimeline(e) {
  const box = $('#event-detail');
  box.hidden = false;
  box.replaceChildren(el('h2', {}, 'Timeline'), el('p', { class: 'muted' }, 'Loading…'));
  try {
    const items = [];
    let cursor = null;
    do {
      const { data } = await api('GET', '/v1/messages/' + encodeURIComponent(e.message_id) + '/events',
        { tenant: e.tenant, cursor });
      items.push(...data.items);
      cursor = data.next_cursor;
    } while (cursor && items.length < 1000);
    const list = el('ol', { class: 'timeline' });
    for (const it of items) {
      list.append(el('li', {}, el('span', { class: 'dot' }),
        el('button', { type: 'button', class: 'link', onclick: () => showEvent(it) },
          fmtTime(it.occurred_at || it.received_at)), ' ', typeBadge(it.type),
        el('div', { class: 'muted small' }, (it.recipient || '') + ' · ' + it.source + ' (' + it.provider + ')')));
    }
    box.replaceChildren(
      el('div', { class: 'detail-head' }, el('h2', {}, 'Timeline'),
        el('button', { type: 'button', class: 'btn btn-ghost close', 'aria-label': 'Close timeline',
          onclick: () => { box.hidden = true; } }, '×')),
      el('p', { class: 'mono small' }, e.message_id),
      items.length ? list : el('p', { class: 'muted' }, 'No events for this message.'));
  } catch (err) {
    if (err instanceof Unauthorized) return;
    box.replaceChildren(el('h2', {}, 'Timeline'), el('p', { class: 'error' }, err.message));
  }
}

/* ---- suppressions -------------------------------------------------------------------- */

function causeCell(s, tag) {
  const td = el(tag || 'td', { class: 'cause' });
  if (s.source) td.append(el('span', {}, s.source));
  if (s.source_event_id) {
    const manual = /^(api|cli|import)-/.test(s.source_event_id);
    td.append(manual ? el('div', { class: 'mono small muted ellipsis', title: s.source_event_id }, s.source_event_id)
      : el('a', { class: 'mono small ellipsis', title: 'Show event ' + s.source_event_id,
        href: '#/events?' + new URLSearchParams({ tenant: s.tenant, recipient: s.address,
          event_id: s.source_event_id }) }, s.source_event_id));
  }
  if (!td.childNodes.length) td.textContent = '—';
  return td;
}

function reasonBadge(r) { return el('span', { class: 'badge r-' + r, text: r }); }

function suppRow(s) {
  return el('tr', { 'data-address': s.address },
    el('td', { class: 'ellipsis', title: s.address }, s.address), el('td', {}, s.tenant),
    el('td', {}, reasonBadge(s.reason)), el('td', { class: 'nowrap' }, fmtTime(s.since)),
    el('td', { class: 'nowrap' }, s.expires_at ? fmtTime(s.expires_at) : '—'), causeCell(s),
    el('td', { class: 'right' }, el('button', { type: 'button', class: 'btn btn-small btn-danger-ghost',
      onclick: () => liftSuppression(s.tenant, s.address), 'aria-label': 'Remove ' + s.address }, 'Remove')));
}

async function lookup(ev) {
  if (ev) ev.preventDefault();
  const v = formValues($('#lookup-form'));
  const out = $('#lookup-result');
  if (!v.tenant || !v.address) {
    out.replaceChildren(el('p', { class: 'error' }, 'Enter a tenant and an address.'));
    return;
  }
  out.replaceChildren(el('p', { class: 'muted' }, 'Checking…'));
  try {
    const { data } = await api('GET', '/v1/suppressions/' + encodeURIComponent(v.address), { tenant: v.tenant });
    out.replaceChildren(el('div', { class: 'verdict stop' },
      el('strong', {}, 'Suppressed — do not send'),
      dl([['Address', data.address], ['Reason', reasonBadge(data.reason)], ['Since', fmtTime(data.since)],
        ['Expires', data.expires_at ? fmtTime(data.expires_at) : ''], ['Caused by', causeCell(data, 'div')]]),
      el('button', { type: 'button', class: 'btn btn-small btn-danger-ghost',
        onclick: () => liftSuppression(data.tenant, data.address) }, 'Remove…')));
  } catch (e) {
    if (e instanceof Unauthorized) return;
    if (e.status === 404 && e.body && e.body.suppressed === false)
      out.replaceChildren(el('div', { class: 'verdict go' }, el('strong', {}, 'Not suppressed — may send'),
        el('div', { class: 'muted' }, e.body.address + ' for tenant ' + e.body.tenant)));
    else out.replaceChildren(el('p', { class: 'error' }, e.message));
  }
}

async function addSuppression(ev) {
  ev.preventDefault();
  const v = formValues($('#add-form'));
  const out = $('#add-result');
  try {
    const { data } = await api('POST', '/v1/suppressions', undefined,
      { tenant: v.tenant, address: v.address, reason: v.reason });
    setStatus(out, 'Suppressed ' + data.address + ' (' + data.reason + ').', 'ok');
    $('#add-address').value = '';
    if (state.suppsQuery) listSuppressions();
  } catch (e) { failed(out, e); }
}

async function liftSuppression(tenant, address) {
  const ok = await confirmAction('Remove the suppression?',
    'Mail to ' + address + ' (tenant ' + tenant + ') will be allowed again. The removal is ' +
    'recorded: an older event arriving late will not suppress it again.', 'Remove');
  if (!ok) return;
  const status = $('#supp-status');
  try {
    await api('DELETE', '/v1/suppressions/' + encodeURIComponent(address), { tenant });
    setStatus(status, 'Removed the suppression of ' + address + '.', 'ok');
    for (const tr of $$('#supp-table tbody tr'))
      if (tr.getAttribute('data-address') === address) tr.remove();
    state.supps = state.supps.filter((s) => !(s.address === address && s.tenant === tenant));
    const lk = formValues($('#lookup-form'));
    if (lk.address && lk.address.toLowerCase() === address) lookup();
  } catch (e) { failed(status, e); }
}

async function listSuppressions(ev) {
  if (ev) ev.preventDefault();
  const v = formValues($('#supp-form'));
  state.suppsQuery = { tenant: v.tenant, reason: v.reason };
  state.supps = [];
  state.suppsCursor = null;
  $('#supp-table tbody').replaceChildren();
  await moreSuppressions();
}

async function moreSuppressions() {
  const status = $('#supp-status');
  setStatus(status, 'Loading…');
  try {
    const { data } = await api('GET', '/v1/suppressions', { ...state.suppsQuery, cursor: state.suppsCursor });
    state.supps.push(...data.items);
    state.suppsCursor = data.next_cursor;
    const tbody = $('#supp-table tbody');
    for (const s of data.items) tbody.append(suppRow(s));
    $('#supp-more').hidden = !data.next_cursor;
    const n = state.supps.length;
    setStatus(status, n ? n + ' suppressed address' + (n === 1 ? '' : 'es') + (data.next_cursor ? ' (more available)' : '')
      : 'No address is suppressed.', n ? '' : 'empty');
  } catch (e) { failed(status, e); }
}

function csvField(v) {
  const s = v === undefined || v === null ? '' : String(v);
  return /[",\r\n]/.test(s) || /^[=+\-@]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

/* The whole list (every page) as CSV, in the columns of `mailhook suppressions export`. */
async function exportCsv() {
  const status = $('#supp-status');
  if (!state.suppsQuery) await listSuppressions();
  try {
    while (state.suppsCursor) {
      setStatus(status, 'Loading every page for the export… (' + state.supps.length + ')');
      await moreSuppressions();
    }
  } catch (e) { failed(status, e); return; }
  const cols = ['tenant', 'address', 'reason', 'since', 'expires_at', 'source', 'source_event_id'];
  const lines = [cols.join(',')].concat(state.supps.map((s) => cols.map((c) => csvField(s[c])).join(',')));
  const name = 'suppressions' + (state.suppsQuery.tenant ? '-' + state.suppsQuery.tenant : '') + '.csv';
  download(name, lines.join('\r\n') + '\r\n', 'text/csv');
  setStatus(status, 'Exported ' + state.supps.length + ' rows to ' + name + '.', 'ok');
}

/* ---- dead letters -------------------------------------------------------------------- */

const unavailable = (what, path) => 'This mailhook-api does not serve ' + what + ' (' + path +
  ' answered 404): upgrade it, or use the `mailhook dlq` command.';

async function listDeadLetters(ev) {
  if (ev) ev.preventDefault();
  const v = formValues($('#dlq-form'));
  state.dlqQuery = { tenant: v.tenant, source: v.source };
  state.dlq = [];
  state.dlqCursor = null;
  $('#dlq-table tbody').replaceChildren();
  $('#dlq-all').checked = false;
  updateSelection();
  await moreDeadLetters();
}

async function moreDeadLetters() {
  const status = $('#dlq-status');
  setStatus(status, 'Loading…');
  try {
    const { data } = await api('GET', '/v1/dlq', { ...state.dlqQuery, limit: 100, before: state.dlqCursor });
    state.dlq.push(...data.items);
    state.dlqCursor = data.next_cursor;
    $('#dlq-split').hidden = false;
    const tbody = $('#dlq-table tbody');
    for (const d of data.items) tbody.append(dlqRow(d));
    $('#dlq-more').hidden = !data.next_cursor;
    const n = state.dlq.length;
    setStatus(status, (n ? n + ' dead letter' + (n === 1 ? '' : 's') + ', newest first'
      : 'The dead-letter topic holds nothing here.') +
      (data.partial ? ' (reading stopped early: Load more goes on)' : ''), n ? '' : 'empty');
  } catch (e) {
    if (e.status === 404) {
      $('#dlq-split').hidden = true;
      setStatus(status, unavailable('the dead-letter topic', 'GET /v1/dlq'), 'warn');
    } else failed(status, e);
  }
}

/* A row per dead letter; its checkbox carries the raw record to re-run (the replay reads
 * the raw topic, not the dead-letter topic). */
function dlqRow(d) {
  const key = d.dlq.partition + ':' + d.dlq.offset;
  const raw = d.raw && d.raw.partition !== undefined ? d.raw.partition + ':' + d.raw.offset : '';
  const box = el('input', { type: 'checkbox', class: 'dlq-pick', value: raw, disabled: !raw,
    'aria-label': 'Select dead letter ' + key, onchange: updateSelection });
  return el('tr', { 'data-dlq': key },
    el('td', {}, box), el('td', { class: 'nowrap' }, fmtTime(d.received_at)),
    el('td', {}, d.source || '—', d.provider ? el('span', { class: 'sub' }, d.provider) : ''),
    el('td', {}, d.tenant || '—'), el('td', {}, d.stage || '—'),
    el('td', { class: 'reason' }, d.reason || '—'),
    el('td', { class: 'mono small' }, d.request_id || '—'),
    el('td', { class: 'mono small nowrap' }, 'dlq ' + key,
      raw ? el('button', { type: 'button', class: 'link sub raw-open', title: 'Raw body of ' + d.raw.topic + ' ' + raw,
        'aria-expanded': 'false', onclick: (ev) => toggleDlqRawBody(ev.currentTarget, d) }, 'raw ' + raw) : ''));
}

/* A row under the dead letter's row showing its raw record's body (GET /v1/raw). */
function toggleDlqRawBody(button, d) {
  const tr = button.closest('tr');
  const open = tr.nextElementSibling && tr.nextElementSibling.classList.contains('raw-row');
  if (open) tr.nextElementSibling.remove();
  button.setAttribute('aria-expanded', open ? 'false' : 'true');
  if (open) return;
  const cell = el('td', { colspan: String(tr.children.length) });
  tr.after(el('tr', { class: 'raw-row' }, cell));
  showRawBody(cell, d.raw);
}

function selectedRecords() {
  return $$('.dlq-pick:checked').filter((b) => b.value).map((b) => {
    const [p, o] = b.value.split(':');
    return { partition: Number(p), offset: Number(o) };
  });
}

function updateSelection() {
  const n = selectedRecords().length;
  $('#replay-count').textContent = n ? n + ' record' + (n === 1 ? '' : 's') + ' selected.' : 'No record selected.';
  for (const tr of $$('#dlq-table tbody tr[data-dlq]'))
    tr.classList.toggle('selected', $('.dlq-pick', tr).checked);
}

let replayTimer = null;
function stopReplayPolling() { if (replayTimer) clearTimeout(replayTimer); replayTimer = null; }

async function startReplay(ev) {
  ev.preventDefault();
  const records = selectedRecords();
  const topic = $('#replay-topic').value.trim();
  const out = $('#replay-progress');
  if (!records.length) { out.replaceChildren(el('p', { class: 'error' }, 'Select the records to re-run.')); return; }
  if (!topic) { out.replaceChildren(el('p', { class: 'error' }, 'Enter the target topic.')); $('#replay-topic').focus(); return; }
  const ok = await confirmAction('Re-run ' + records.length + ' record' + (records.length === 1 ? '' : 's') + '?',
    'Their raw webhooks go through the worker again; the events are written to the topic "' + topic + '".', 'Re-run');
  if (!ok) return;
  try {
    const { data } = await api('POST', '/v1/dlq/replays', undefined, { records, target_topic: topic });
    renderReplay(data);
    pollReplay(data.id);
  } catch (e) {
    if (e instanceof Unauthorized) return;
    out.replaceChildren(el('p', { class: 'error' }, e.status === 404
      ? unavailable('replays', 'POST /v1/dlq/replays') : e.message));
  }
}

function renderReplay(r) {
  const total = r.total || 0;
  const done = r.done || 0;
  const pct = total ? Math.round((100 * done) / total) : (r.status === 'done' ? 100 : 0);
  const bar = el('progress', { max: '100', value: String(pct), 'aria-label': 'Replay progress' });
  $('#replay-progress').replaceChildren(el('div', { class: 'replay' },
    el('div', { class: 'replay-head' }, el('strong', {}, 'Replay ' + r.id),
      el('span', { class: 'badge s-' + r.status }, r.status)),
    bar, el('div', { class: 'replay-counts' }, done + ' of ' + total + ' records',
      r.emitted !== undefined ? ' · ' + r.emitted + ' events written' : '',
      r.dead_letters !== undefined ? ' · ' + r.dead_letters + ' dead-lettered again' : ''),
    r.error ? el('p', { class: 'error' }, r.error) : '',
    r.cli ? el('div', {}, el('div', { class: 'small muted' }, 'The same with the CLI:'),
      el('code', { class: 'cli' }, r.cli)) : ''));
}

function pollReplay(id) {
  stopReplayPolling();
  replayTimer = setTimeout(async () => {
    try {
      const { data } = await api('GET', '/v1/dlq/replays/' + encodeURIComponent(id));
      renderReplay(data);
      if (data.status === 'running') pollReplay(id);
    } catch (e) {
      if (!(e instanceof Unauthorized))
        $('#replay-progress').append(el('p', { class: 'error' }, e.message));
    }
  }, 1000);
}

/* ---- sources ------------------------------------------------------------------------- */

async function loadSources(ev) {
  if (ev) ev.preventDefault();
  const status = $('#sources-status');
  const list = $('#sources-list');
  const range = Number($('#src-range').value);
  const step = Math.max(60, Math.round(range / 120));
  const only = $('#src-filter').value.trim();
  setStatus(status, 'Loading…');
  try {
    const { data } = await api('GET', '/v1/sources/stats', { range, step });
    // Sources that refused requests (a rotated secret, a forger) first.
    const sources = data.sources.filter((s) => !only || s.name === only)
      .map((s) => [refusedCount(s), s]).sort((a, b) => b[0] - a[0] || a[1].name.localeCompare(b[1].name))
      .map(([, s]) => s);
    list.replaceChildren(...sources.map((s) => sourceCard(s, data.now - range, data.now)));
    setStatus(status, sources.length ? sources.length + ' source' + (sources.length === 1 ? '' : 's') +
      ', step ' + data.step + ' s' : 'No source matches.', sources.length ? '' : 'empty');
  } catch (e) {
    list.replaceChildren();
    if (e.status === 404) setStatus(status, 'This mailhook-api does not serve source statistics ' +
      '(GET /v1/sources/stats answered 404): upgrade it.', 'warn');
    else failed(status, e);
  }
}

const sum = (pts) => (pts || []).reduce((a, p) => a + (Number(p[1]) || 0), 0);

function refusedCount(s) {
  return ['401', '403'].reduce((a, c) => a + sum((s.responses || {})[c]), 0);
}

function sourceCard(s, t0, t1) {
  const codes = Object.keys(s.responses || {}).sort();
  const refused = refusedCount(s);
  const types = Object.keys(s.events || {}).sort();
  const pick = (obj, keys, colors) => keys.map((k, i) => ({ name: k, points: obj[k] || [],
    color: (colors && colors[k]) || PALETTE[i % PALETTE.length] }));
  return el('article', { class: 'card source', 'data-source': s.name },
    el('header', { class: 'source-head' },
      el('h2', {}, s.name), el('span', { class: 'muted' }, s.provider + ' · tenant ' + s.tenant),
      refused ? el('span', { class: 'badge alert', 'data-refused': String(refused) },
        fmtNum(refused) + ' refused (401/403)') : el('span', { class: 'badge ok' }, 'signatures ok')),
    el('div', { class: 'charts' },
      chartBox('Requests by answer', pick(s.responses || {}, codes, STATUS_COLORS), { t0, t1, kind: 'count' }),
      chartBox('Events by type', pick(s.events || {}, types, TYPE_COLORS), { t0, t1, kind: 'count' }),
      chartBox('Bounce and complaint rate', [
        { name: 'bounce', points: s.bounce_rate || [], color: '#d9480f' },
        { name: 'complaint', points: s.complaint_rate || [], color: '#ae3ec9' }], { t0, t1, kind: 'rate' }),
      chartBox('Time to 200', [
        { name: 'p50', points: (s.ack_seconds || {}).p50 || [], color: '#2452c6' },
        { name: 'p99', points: (s.ack_seconds || {}).p99 || [], color: '#e8590c' }], { t0, t1, kind: 'seconds' })));
}

function chartBox(title, series, opts) {
  const legend = el('ul', { class: 'legend' }, series.map((s) =>
    el('li', { 'data-series': s.name }, el('span', { class: 'swatch', 'data-color': s.color }),
      s.name + (opts.kind === 'count' ? ' (' + fmtNum(sum(s.points)) + ')' : ''))));
  for (const sw of $$('.swatch', legend)) sw.style.background = sw.getAttribute('data-color');
  return el('figure', { class: 'chart', 'data-chart': title },
    el('figcaption', {}, title), lineChart(series, { ...opts, title }), legend);
}

function fmtNum(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (v >= 1e4) return (v / 1e3).toFixed(0) + 'k';
  if (v >= 1e3) return (v / 1e3).toFixed(1) + 'k';
  return String(Math.round(v * 100) / 100);
}

function fmtY(v, kind) {
  if (kind === 'rate') return (v * 100).toFixed(v < 0.1 && v > 0 ? 1 : 0) + '%';
  if (kind === 'seconds') return v < 1 ? Math.round(v * 1000) + ' ms' : v.toFixed(1) + ' s';
  return fmtNum(v);
}

/* A "nice" step for about n ticks up to max. */
function niceStep(max, n) {
  const raw = max / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/* Time series [[unix seconds, value], ...] as lines on one SVG, with a y grid and time
 * ticks along the bottom. */
function lineChart(series, { t0, t1, kind, title }) {
  const W = 620, H = 200, L = 52, R = 10, T = 10, B = 24;
  const pts = series.flatMap((s) => s.points).filter((p) => p[1] !== null && p[1] !== undefined);
  const xs = pts.map((p) => Number(p[0]));
  const lo = Math.min(t0, ...xs), hi = Math.max(t1, ...xs);
  let ymax = Math.max(0, ...pts.map((p) => Number(p[1]) || 0));
  if (ymax === 0) ymax = kind === 'rate' ? 0.01 : kind === 'seconds' ? 0.1 : 1;
  const step = niceStep(ymax, 4);
  ymax = Math.ceil(ymax / step) * step;
  const x = (t) => L + ((t - lo) / Math.max(1, hi - lo)) * (W - L - R);
  const y = (v) => T + (1 - v / ymax) * (H - T - B);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, class: 'plot' });
  root.append(svg('title', {}, title));
  for (let v = 0; v <= ymax + step / 2; v += step) {
    root.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    root.append(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, fmtY(v, kind)));
  }
  const span = hi - lo;
  const tstep = [300, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].find((s) => span / s <= 6) || 172800;
  for (let t = Math.ceil(lo / tstep) * tstep; t <= hi; t += tstep) {
    const d = new Date(t * 1000);
    const label = tstep >= 86400 ? d.toISOString().slice(5, 10)
      : d.toISOString().slice(11, 16);
    root.append(svg('line', { x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4, class: 'axis' }));
    root.append(svg('text', { x: x(t), y: H - 6, 'text-anchor': 'middle', class: 'tick' }, label));
  }
  root.append(svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
  for (const s of series) {
    const sorted = s.points.slice().sort((a, b) => a[0] - b[0]);
    let d = '', pen = 'M', alone = [];
    sorted.forEach((p, i) => {
      if (p[1] === null || p[1] === undefined) { pen = 'M'; return; }
      const next = sorted[i + 1];
      if (pen === 'M' && (!next || next[1] === null || next[1] === undefined)) alone.push(p);
      d += pen + x(Number(p[0])).toFixed(1) + ' ' + y(Number(p[1])).toFixed(1) + ' ';
      pen = 'L';
    });
    if (d) root.append(svg('path', { d: d.trim(), fill: 'none', stroke: s.color, 'stroke-width': '2',
      'stroke-linejoin': 'round', class: 'series', 'data-series': s.name }));
    for (const p of alone)
      root.append(svg('circle', { cx: x(Number(p[0])), cy: y(Number(p[1])), r: 2.5, fill: s.color }));
  }
  if (!pts.length)
    root.append(svg('text', { x: (L + W - R) / 2, y: H / 2, 'text-anchor': 'middle', class: 'nodata' }, 'no data'));
  return root;
}

/* ---- wiring -------------------------------------------------------------------------- */

function init() {
  const typeSel = $('#ev-type');
  for (const t of EVENT_TYPES) typeSel.append(el('option', { value: t }, t));
  $('#login-form').addEventListener('submit', signIn);
  $('#sign-out').addEventListener('click', () => signOut());
  $('#events-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (location.hash.includes('?')) history.replaceState(null, '', '#/events');
    searchEvents();
  });
  $('#events-form').addEventListener('reset', () => setTimeout(() => defaultTenant($('#ev-tenant'))));
  $('#events-more').addEventListener('click', () => moreEvents());
  $('#lookup-form').addEventListener('submit', lookup);
  $('#add-form').addEventListener('submit', addSuppression);
  $('#supp-form').addEventListener('submit', listSuppressions);
  $('#supp-more').addEventListener('click', () => moreSuppressions());
  $('#supp-export').addEventListener('click', exportCsv);
  $('#dlq-form').addEventListener('submit', listDeadLetters);
  $('#dlq-more').addEventListener('click', () => moreDeadLetters());
  $('#dlq-all').addEventListener('change', (e) => {
    for (const b of $$('.dlq-pick:not(:disabled)')) b.checked = e.target.checked;
    updateSelection();
  });
  $('#replay-form').addEventListener('submit', startReplay);
  $('#sources-form').addEventListener('submit', loadSources);
  $('#src-range').addEventListener('change', loadSources);
  window.addEventListener('hashchange', route);
  route();
}

document.addEventListener('DOMContentLoaded', init);
