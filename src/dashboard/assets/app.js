// Switchboard dashboard: renders the sections the server sends over /dashboard/events (a
// snapshot, then each section as it changes) and ticks the timers itself. Every number sits in an
// element with data-metric="NAME" whose text is the value. No framework, no build step, and no
// server text is ever parsed as HTML.
'use strict';
(() => {
  const state = { live: null, today: null, voicemails: null, health: null, offset: 0, me: null };
  const $ = (sel, root = document) => root.querySelector(sel);
  // Absolute URLs from the origin: a relative one would carry the credentials of a page opened
  // as http://user:password@host/dashboard (a kiosk's wall screen), which fetch() refuses.
  const at = (path) => `${location.origin}${path}`;

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function metric(root, name, value) {
    for (const e of root.querySelectorAll(`[data-metric="${name}"]`)) {
      // Only this root's own figures, not a nested card's.
      if (e.closest('[data-scope], [data-line]') !== root) continue;
      const text = value === null || value === undefined ? '–' : String(value);
      if (e.textContent !== text) e.textContent = text;
    }
  }

  const now = () => Date.now() + state.offset;
  const secsSince = (ms) => Math.max(0, Math.floor((now() - ms) / 1000));
  function duration(secs) {
    const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
    const two = (n) => String(n).padStart(2, '0');
    return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
  }
  const pct = (v) => (v === null || v === undefined ? null : Math.round(v * 100));
  const secs1 = (v) => (v === null || v === undefined ? null : Math.round(v));
  const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

  const AGENT_STATES = {
    available: 'available', ringing: 'ringing', on_call: 'on a call', own_call: 'on own call',
    wrap_up: 'wrap-up', away: 'away',
  };
  const CALL_STATES = { menu: 'menu', ringing: 'ringing', talking: 'talking', voicemail: 'voicemail' };
  const PARTICIPANT_STATES = {
    waiting: 'waiting', in_room: 'in the room', ringing: 'ringing', answered: 'answered',
    joining: 'joining', left: 'left',
  };

  // A conference call's room: who is in it, and (for supervisors) its controls.
  function room(c) {
    const base = `/dashboard/calls/${encodeURIComponent(c.sid)}`;
    const button = (text, path, what) => {
      const b = el('button', { class: 'act', type: 'button', textContent: text });
      b.onclick = () => act(`${base}${path}`, what);
      return b;
    };
    const people = c.room.participants.map((p) => {
      const who = `/participants/${encodeURIComponent(p.label)}`;
      const here = p.state === 'in_room' || p.state === 'joining' || p.state === 'waiting';
      const flags = [p.muted ? 'muted' : null, p.held ? 'on hold' : null].filter(Boolean).join(', ');
      return el('li', { 'data-participant': p.label, class: p.state },
        el('span', {}, p.name),
        el('small', {}, PARTICIPANT_STATES[p.state] || p.state, flags ? ` · ${flags}` : ''),
        here ? button(p.muted ? 'Unmute' : 'Mute', `${who}/${p.muted ? 'unmute' : 'mute'}`, `${p.muted ? 'unmute' : 'mute'} ${p.name}`) : null,
        here ? button(p.held ? 'Resume' : 'Hold', `${who}/${p.held ? 'resume' : 'hold'}`, `${p.held ? 'resume' : 'hold'} ${p.name}`) : null,
        here && p.label !== 'caller' ? button('Remove', `${who}/remove`, `remove ${p.name}`) : null,
      );
    });
    const rec = button(c.room.recording ? 'Stop recording' : 'Record', `/recording/${c.room.recording ? 'stop' : 'start'}`, c.room.recording ? 'stop recording' : 'start recording');
    const add = el('button', { class: 'act', type: 'button', textContent: 'Add…' });
    add.onclick = () => {
      const number = prompt('Number to call into this call (+1…)');
      if (!number) return;
      const name = prompt('Their name (they hear it when greeted)') || '';
      act(`${base}/participants`, `add ${name || number}`, { number, name });
    };
    return el('div', { class: 'room' },
      el('ul', { class: 'participants' }, ...people),
      el('div', { class: 'room-acts' }, c.room.recording ? el('small', { class: 'rec' }, '● recording') : null, rec, add),
    );
  }

  function toast(text) {
    const t = $('#toast');
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  async function act(url, what, body) {
    try {
      const headers = { 'X-Switchboard-Action': '1', 'X-Switchboard-Page': '1' };
      if (body) headers['Content-Type'] = 'application/json';
      const res = await fetch(at(url), { method: 'POST', headers, credentials: 'same-origin', body: body ? JSON.stringify(body) : undefined });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        toast(`${what}: ${body.error || res.status}`);
      } else {
        toast(`${what}: done`);
      }
    } catch (e) {
      toast(`${what}: ${e}`);
    }
  }

  function renderNow() {
    const live = state.live;
    if (!live) return;
    const summary = $('#summary');
    metric(summary, 'waiting', live.waiting);
    metric(summary, 'in-conversation', live.in_conversation);
    metric(summary, 'agents-available', live.agents_count.available);
    metric(summary, 'agents-on-call', live.agents_count.on_call);
    $('[data-alert="waiting"]').classList.toggle('hot', live.waiting > 0);
    const lines = $('#lines');
    const template = $('#line-card');
    const cards = [];
    for (const line of live.lines) {
      let card = lines.querySelector(`[data-line="${CSS.escape(line.id)}"]`);
      if (!card) {
        card = template.content.firstElementChild.cloneNode(true);
        card.setAttribute('data-line', line.id);
      }
      cards.push(card);
      $('.name', card).textContent = line.name;
      const badge = $('.badge', card);
      badge.textContent = line.open ? 'open' : 'closed';
      badge.className = `badge ${line.open ? 'open' : 'closed'}`;
      const why = line.why.replace(/_/g, ' ') + (line.until ? ` · until ${time(Date.parse(line.until))}` : '');
      $('.why', card).textContent = line.override ? `${why} · by ${line.override.by}` : why;
      const button = $('.line-act', card);
      button.textContent = line.open ? 'Close line' : 'Open line';
      button.onclick = () => {
        const verb = line.open ? 'close' : 'open';
        act(`/dashboard/lines/${encodeURIComponent(line.id)}/${verb}`, `${verb} ${line.name}`);
      };
      metric(card, 'waiting', line.waiting);
      metric(card, 'in-conversation', line.in_conversation);
      metric(card, 'agents-available', line.agents_count.available);
      metric(card, 'agents-on-call', line.agents_count.on_call);
      const calls = $('.calls', card);
      calls.replaceChildren(...(line.calls.length ? line.calls.map((c) => el('li', { class: c.state, 'data-call': c.sid },
        el('span', {}, c.caller, c.agent ? el('span', { class: 'who-with' }, ` · ${c.agent}`) : null),
        el('span', { class: 'state' }, CALL_STATES[c.state] || c.state),
        el('span', { class: 'timer', 'data-since': String(c.since) }, duration(secsSince(c.since))),
        c.room ? room(c) : null,
      )) : [el('li', { class: 'empty' }, 'No calls right now.')]));
      const agents = $('.agents', card);
      agents.replaceChildren(...line.agents.map((a) => {
        const label = a.state === 'wrap_up' && a.until ? el('small', { 'data-until': String(a.until) }, 'wrap-up') : el('small', {}, AGENT_STATES[a.state] || a.state);
        const away = a.state === 'away';
        const button = el('button', { class: 'act', type: 'button', textContent: away ? 'Back' : 'Away' });
        button.onclick = () => act(`/dashboard/agents/${encodeURIComponent(a.id)}/${away ? 'available' : 'away'}`, `${a.name} ${away ? 'available' : 'away'}`);
        return el('li', { class: a.state, 'data-agent': a.id }, a.name, label, button);
      }));
    }
    lines.replaceChildren(...cards);
    renderToday();
    tick();
  }

  function renderToday() {
    const today = state.today;
    if (!today) return;
    const summary = $('#summary');
    const t = today.total;
    metric(summary, 'offered-today', t.offered);
    metric(summary, 'answered-today', t.answered);
    metric(summary, 'abandoned-today', t.abandoned);
    metric(summary, 'voicemail-today', t.voicemail);
    metric(summary, 'answer-rate-pct', pct(t.answer_rate));
    metric(summary, 'asa-secs', secs1(t.asa_secs));
    metric(summary, 'service-level-pct', pct(t.service_level));
    $('#sl-secs').textContent = `(${today.service_level_secs} s)`;
    const since = today.lines.map((l) => Date.parse(l.since)).filter((v) => !Number.isNaN(v));
    $('#today-since').textContent = since.length ? `since ${time(Math.min(...since))}` : '';
    for (const line of today.lines) {
      const card = document.querySelector(`[data-line="${CSS.escape(line.id)}"]`);
      if (!card) continue;
      metric(card, 'offered-today', line.offered);
      metric(card, 'answered-today', line.answered);
      metric(card, 'abandoned-today', line.abandoned);
      metric(card, 'voicemail-today', line.voicemail);
      metric(card, 'service-level-pct', pct(line.service_level));
    }
  }

  function renderVoicemails() {
    const vm = state.voicemails;
    if (!vm) return;
    const names = new Map((state.live ? state.live.lines : []).map((l) => [l.id, l.name]));
    const body = $('#voicemails tbody');
    body.replaceChildren(...vm.items.map((v) => {
      let cell;
      if (v.play) {
        cell = el('button', { type: 'button', textContent: '▶ Play' });
        cell.onclick = () => {
          const audio = el('audio', { controls: true, preload: 'none', src: at(v.play) });
          cell.replaceWith(audio);
          audio.play().catch(() => {});
        };
      } else {
        cell = el('span', { class: 'empty' }, v.state);
      }
      return el('tr', { 'data-voicemail': v.id },
        el('td', {}, time(v.at)),
        el('td', {}, names.get(v.line) || v.line || ''),
        el('td', {}, v.caller || ''),
        el('td', {}, v.duration_secs === null || v.duration_secs === undefined ? '' : duration(v.duration_secs)),
        el('td', {}, cell));
    }));
    $('#no-voicemails').hidden = vm.items.length > 0;
  }

  function renderHealth() {
    const h = state.health;
    if (!h) return;
    const foot = $('#health');
    const sum = (f) => h.replicas.reduce((n, r) => n + (f(r) || 0), 0);
    metric(foot, 'signature-rejections', sum((r) => r.signature_rejections));
    const slack = h.replicas.some((r) => r.slack);
    metric(foot, 'slack-queued', slack ? sum((r) => r.slack && r.slack.pending) : 'off');
    metric(foot, 'slack-dropped', slack ? sum((r) => r.slack && r.slack.dropped) : 'off');
    metric(foot, 'ledger-dropped', sum((r) => r.ledger && r.ledger.dropped));
    const down = [];
    for (const r of h.replicas) {
      if (!r.call_store) down.push(`call store (${r.replica})`);
      if (r.ledger_db === false) down.push(`ledger (${r.replica})`);
      if (r.recordings_store === false) down.push(`recordings (${r.replica})`);
    }
    metric(foot, 'stores', down.length ? `down: ${down.join(', ')}` : 'ok');
    foot.querySelector('[data-metric="stores"]').classList.toggle('bad', down.length > 0);
    metric(foot, 'balance', h.balance ? `${h.balance.available} ${h.balance.currency}` : 'not checked');
    metric(foot, 'replicas', h.replicas.length);
    foot.querySelector('[data-metric="replicas"]').title = h.replicas.map((r) => r.replica).join(', ');
  }

  // Timers tick here, from the server's clock as the last `live` section gave it.
  function tick() {
    for (const e of document.querySelectorAll('[data-since]')) {
      e.textContent = duration(secsSince(Number(e.getAttribute('data-since'))));
    }
    for (const e of document.querySelectorAll('[data-until]')) {
      const left = Math.max(0, Math.ceil((Number(e.getAttribute('data-until')) - now()) / 1000));
      e.textContent = `wrap-up ${duration(left)}`;
    }
    const live = state.live;
    if (live) {
      metric($('#summary'), 'longest-wait-secs', live.longest_wait_since ? secsSince(live.longest_wait_since) : 0);
      for (const line of live.lines) {
        const card = document.querySelector(`[data-line="${CSS.escape(line.id)}"]`);
        if (card) metric(card, 'longest-wait-secs', line.longest_wait_since ? secsSince(line.longest_wait_since) : 0);
      }
    }
    $('#clock').textContent = new Date(now()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  const RENDER = { live: renderNow, today: renderToday, voicemails: renderVoicemails, health: renderHealth };

  function take(name, data) {
    state[name] = data;
    if (name === 'live' && data) state.offset = data.now - Date.now();
  }

  function setConn(s, text) {
    const c = $('#conn');
    c.setAttribute('data-state', s);
    c.textContent = text || s;
  }

  function connect() {
    const events = new EventSource(at('/dashboard/events'));
    events.addEventListener('snapshot', (e) => {
      const all = JSON.parse(e.data);
      for (const name of Object.keys(RENDER)) take(name, all[name]);
      for (const render of Object.values(RENDER)) render();
      renderVoicemails();
    });
    for (const name of Object.keys(RENDER)) {
      events.addEventListener(name, (e) => {
        take(name, JSON.parse(e.data));
        RENDER[name]();
        if (name === 'live') renderVoicemails();
      });
    }
    events.onopen = () => setConn('live');
    events.onerror = () => {
      setConn('reconnecting', 'reconnecting…');
      // Signed out (401: the password changed with a restart) looks like any failed attempt to
      // the stream; ask the server which it is. A replica shutting down (503) makes the browser
      // give up on the stream: open another.
      clearTimeout(connect.check);
      connect.check = setTimeout(async () => {
        const res = await fetch(at('/dashboard/me'), { headers: { 'X-Switchboard-Page': '1' }, credentials: 'same-origin' }).catch(() => null);
        if (res && res.status === 401) {
          events.close();
          setConn('signed-out', 'signed out · reload to sign in');
        } else if (events.readyState === EventSource.CLOSED) {
          connect();
        }
      }, 3000);
    };
  }

  function theme() {
    const saved = localStorage.getItem('switchboard-theme');
    if (saved) document.documentElement.setAttribute('data-theme', saved);
    $('#theme').onclick = () => {
      const dark = getComputedStyle(document.documentElement).colorScheme.includes('dark');
      const next = dark ? 'light' : 'dark';
      document.documentElement.setAttribute('data-theme', next);
      localStorage.setItem('switchboard-theme', next);
    };
  }

  async function whoami() {
    try {
      const res = await fetch(at('/dashboard/me'), { headers: { 'X-Switchboard-Page': '1' }, credentials: 'same-origin' });
      if (!res.ok) return;
      state.me = await res.json();
      $('#who').textContent = `${state.me.name} · ${state.me.role}`;
      document.body.classList.toggle('can-act', state.me.role === 'supervisor');
    } catch (e) { /* the stream says whether we are connected */ }
  }

  theme();
  whoami();
  connect();
  setInterval(tick, 1000);
})();
