// The gateway's page: API key, document uploads with live progress, chat over a WebSocket.
// Plain ES module, no dependencies. Every request carries the key of the first panel.

const $ = (id) => document.getElementById(id);

/** Creates an element with attributes and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== undefined && c !== null));
  return node;
}

/** The JSON body of a response, or null when it has none. */
async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** The message of an API error (`{error: {code, message}}`), or the HTTP status. */
function errorMessage(body, response) {
  return body?.error?.message ?? `${response.status} ${response.statusText || 'error'}`.trim();
}

function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// ---- API key ----------------------------------------------------------------------------

const KEY_STORAGE = 'domain-actions.api-key';
const keyInput = $('api-key');
const keyStatus = $('key-status');

function getKey() {
  return keyInput.value.trim();
}

function authHeaders() {
  return { Authorization: `Bearer ${getKey()}` };
}

/** The key, or null after saying where it is missing. */
function requireKey(report) {
  const key = getKey();
  if (!key) {
    report('Enter an API key first.');
    keyInput.focus();
  }
  return key || null;
}

let appliedKey = null;

/** Saves the key and, when it changed, refreshes what depends on it. */
function applyKey() {
  const key = getKey();
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage may be disabled; the key still works for this page.
  }
  keyStatus.textContent = key ? 'Saved in this browser.' : 'No key yet.';
  if (key === appliedKey) return;
  appliedKey = key;
  refreshDocuments();
  chat.restart();
}

const applyKeySoon = debounce(applyKey, 500);
keyInput.addEventListener('input', applyKeySoon);
keyInput.addEventListener('change', applyKey);
$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  applyKey();
document.body.dataset.ready = 'true';
});
$('key-show').addEventListener('click', (event) => {
  const show = keyInput.type === 'password';
  keyInput.type = show ? 'text' : 'password';
  event.currentTarget.setAttribute('aria-pressed', String(show));
  event.currentTarget.textContent = show ? 'Hide' : 'Show';
});

// ---- Documents --------------------------------------------------------------------------

const uploadForm = $('upload-form');
const uploadButton = $('upload');
const uploadError = $('upload-error');
const fileInput = $('file-input');
const collectionInput = $('collection');
const tasksList = $('tasks');
const documentsBox = $('documents');

/** The tenant's documents by id, from the last listing (citations name them from here). */
let documents = new Map();

const STATUS_LABELS = {
  pending: 'waiting',
  processing: 'reading',
  chunking: 'chunking',
  embedding: 'embedding',
  storing: 'storing',
  completed: 'completed',
  failed: 'failed',
};
const isFinal = (status) => status === 'completed' || status === 'failed';

uploadForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  uploadError.textContent = '';
  const key = requireKey((message) => (uploadError.textContent = message));
  if (!key) return;
  const files = [...fileInput.files];
  const collection = collectionInput.value.trim();
  if (!collection) {
    uploadError.textContent = 'Enter a collection name.';
    return;
  }
  if (files.length === 0) {
    uploadError.textContent = 'Choose one or more files.';
    return;
  }
  const body = new FormData();
  body.append('collection', collection);
  for (const file of files) body.append('file', file, file.name);
  uploadButton.disabled = true;
  uploadButton.textContent = 'Uploading…';
  try {
    const response = await fetch('/v1/documents', { method: 'POST', headers: authHeaders(), body });
    const answer = await readJson(response);
    if (!response.ok) throw new Error(errorMessage(answer, response));
    const accepted = Array.isArray(answer?.documents)
      ? answer.documents
      : [{ ...answer, file_name: answer?.file_name ?? files[0].name }];
    const rows = accepted.map((item, i) => track(item, item.file_name ?? files[i]?.name ?? item.document_id));
    tasksList.prepend(...rows);
    uploadForm.reset();
    collectionInput.value = collection;
  } catch (err) {
    uploadError.textContent = `Upload failed: ${err.message}`;
  } finally {
    uploadButton.disabled = false;
    uploadButton.textContent = 'Upload';
  }
});

/** The row of one uploaded file (replacing an older one of that name), following its task. */
function track(accepted, fileName) {
  tasksList.querySelector('.empty')?.remove();
  const testId = `task-${fileName}`;
  for (const old of tasksList.querySelectorAll('li.task')) {
    if (old.dataset.testid === testId) old.remove();
  }
  const status = h('span', { class: 'status-text', 'data-testid': `task-status-${fileName}` }, 'uploaded');
  const bar = h('progress', { max: '100', value: '0', 'aria-label': `${fileName} progress` });
  const row = h('li', { class: 'task', 'data-testid': testId, 'data-status': 'pending' },
    h('span', { class: 'name' }, fileName), status, bar);
  row.update = (task) => {
    if (isFinal(task.status) && row.dataset.status !== task.status) {
      $('task-announcer').textContent = `${fileName}: ${task.status}`;
    }
    row.dataset.status = task.status;
    bar.value = task.status === 'completed' ? 100 : (task.percentage ?? 0);
    let text = STATUS_LABELS[task.status] ?? task.status;
    if (task.status === 'completed') {
      text += (task.duplicate_of ?? accepted.duplicate_of)
        ? ' · already in the collection'
        : ` · ${task.chunks_total ?? 0} chunk${task.chunks_total === 1 ? '' : 's'}`;
    } else if (task.status === 'failed') {
      text += task.error ? `: ${task.error}` : '';
    } else {
      text += ` ${task.percentage ?? 0}%`;
      if (task.chunks_total) text += ` · ${task.chunks_done ?? 0}/${task.chunks_total} chunks`;
    }
    status.textContent = text;
  };
  follow(accepted.task_id, row);
  return row;
}

/** Follows a task's server-sent `progress` events until it completes or fails. */
function follow(taskId, row, attempt = 0) {
  const url = `/v1/tasks/${encodeURIComponent(taskId)}/events?api_key=${encodeURIComponent(getKey())}`;
  const events = new EventSource(url);
  let ended = false;
  events.addEventListener('progress', (event) => {
    let task;
    try {
      task = JSON.parse(event.data);
    } catch {
      return;
    }
    row.update(task);
    if (isFinal(task.status)) {
      ended = true;
      events.close();
      refreshDocumentsSoon();
    }
  });
  events.addEventListener('error', async () => {
    // While CONNECTING the browser retries by itself; CLOSED means it was refused.
    if (ended || events.readyState !== EventSource.CLOSED) return;
    try {
      const response = await fetch(`/v1/tasks/${encodeURIComponent(taskId)}`, { headers: authHeaders() });
      const task = await readJson(response);
      if (!response.ok) throw new Error(errorMessage(task, response));
      row.update(task);
      if (isFinal(task.status)) {
        refreshDocumentsSoon();
        return;
      }
    } catch (err) {
      if (attempt >= 5) {
        row.update({ status: 'failed', error: `no progress: ${err.message}` });
        return;
      }
    }
    setTimeout(() => follow(taskId, row, attempt + 1), 1000 * (attempt + 1));
  });
}

function formatSize(bytes) {
  if (!Number.isFinite(bytes)) return '';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** A document's name for people: its title, with the file name when that differs. */
function documentName(doc, fallback) {
  if (!doc) return fallback;
  const title = doc.title || doc.file_name || doc.document_id;
  return doc.title && doc.file_name && doc.title !== doc.file_name ? `${title} (${doc.file_name})` : title;
}

/**
 * Where a cited passage is, as a reader names it: `Title (file) › Heading, page 3` with what
 * the citation knows; the document's listed name and the part when it knows nothing else.
 */
function citationSource(c) {
  // A citation names its document as a listed document does, else the listing names it.
  let source = documentName(c.title || c.file_name ? c : documents.get(c.document_id), c.document_id);
  if (c.heading && c.heading !== c.title) source += ` › ${c.heading}`;
  if (c.page) source += `, page ${c.page}`;
  if (!c.heading && !c.page) source += `, part ${c.chunk_index}`;
  return source;
}

let listing = null;

/** Lists the tenant's documents, grouped by collection. */
async function refreshDocuments() {
  const key = getKey();
  if (!key) {
    documentsBox.replaceChildren(h('p', { class: 'empty' }, 'Enter an API key to see your documents.'));
    return;
  }
  const mine = (listing = {});
  documentsBox.setAttribute('aria-busy', 'true');
  try {
    const response = await fetch('/v1/documents', { headers: authHeaders() });
    const body = await readJson(response);
    if (listing !== mine) return; // a newer listing is on its way
    if (!response.ok) throw new Error(errorMessage(body, response));
    const docs = body?.documents ?? [];
    documents = new Map(docs.map((doc) => [doc.document_id, doc]));
    renderDocuments(docs);
    chat.renameCitations();
  } catch (err) {
    documentsBox.replaceChildren(h('p', { class: 'error' }, `Could not list documents: ${err.message}`));
  } finally {
    if (listing === mine) documentsBox.setAttribute('aria-busy', 'false');
  }
}

const refreshDocumentsSoon = debounce(refreshDocuments, 300);
$('refresh').addEventListener('click', refreshDocuments);

function renderDocuments(docs) {
  if (docs.length === 0) {
    documentsBox.replaceChildren(h('p', { class: 'empty' }, 'No documents yet.'));
    return;
  }
  const byCollection = new Map();
  for (const doc of docs) {
    if (!byCollection.has(doc.collection)) byCollection.set(doc.collection, []);
    byCollection.get(doc.collection).push(doc);
  }
  const groups = [...byCollection.entries()].sort(([a], [b]) => a.localeCompare(b));
  documentsBox.replaceChildren(...groups.map(([collection, items]) => {
    items.sort((a, b) => (b.created_at ?? '').localeCompare(a.created_at ?? ''));
    return h('details', { open: '', 'data-testid': `collection-${collection}` },
      h('summary', {}, collection, ' ',
        h('span', { class: 'count' }, `(${items.length} document${items.length === 1 ? '' : 's'})`)),
      h('ul', {}, ...items.map((doc) => {
        const facts = [doc.kind, formatSize(doc.size_bytes), `${doc.chunks} chunk${doc.chunks === 1 ? '' : 's'}`,
          doc.status === 'completed' ? null : doc.status].filter(Boolean).join(' · ');
        return h('li', { 'data-testid': `document-${doc.document_id}` },
          h('span', { class: 'title' }, documentName(doc, doc.document_id)), ' ',
          h('span', { class: 'facts' }, facts));
      })));
  }));
}

// ---- Chat -------------------------------------------------------------------------------

const messagesList = $('messages');
const chatForm = $('chat-form');
const chatInput = $('chat-input');
const chatStatus = $('chat-status');
const agentInput = $('agent-id');
const ID_RULE = /^[A-Za-z0-9_-]{1,64}$/;

/** A UUID v4 (crypto.randomUUID needs a secure context; getRandomValues does not). */
function newSessionId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const sessionId = newSessionId();
$('session-id').textContent = sessionId;

/** What the test (and a curious developer) can read: frames seen so far. */
window.chatStats = { streamChunks: 0, responses: 0, errors: 0 };

function setChatStatus(text, tone = '') {
  chatStatus.textContent = text;
  chatStatus.className = `status ${tone}`.trim();
}

/** One chat bubble; assistant bubbles collect tokens and then the final answer. */
function addBubble(role, text) {
  const textNode = h('span', { class: 'text' }, text);
  const li = h('li', { class: `bubble ${role}` },
    h('span', { class: 'who' }, role === 'user' ? 'You' : 'Assistant'), textNode);
  const bubble = { li, textNode, taskId: null, final: false, chunks: 0, citations: [] };
  if (role === 'assistant') {
    bubble.citesNode = h('ul', { class: 'citations', 'aria-label': 'Sources' });
    li.append(bubble.citesNode);
    li.setAttribute('aria-busy', 'true');
    li.dataset.chunks = '0';
    for (const old of messagesList.querySelectorAll('[data-testid="answer"], [data-testid="citations"]')) {
      old.removeAttribute('data-testid');
    }
    li.dataset.testid = 'answer';
    bubble.citesNode.dataset.testid = 'citations';
  }
  messagesList.append(li);
  li.scrollIntoView({ block: 'end', behavior: 'smooth' });
  return bubble;
}

const chat = {
  socket: null,
  ready: false,
  everReady: false,
  refused: false,
  retries: 0,
  timer: null,
  /** Message frames waiting for the connection. */
  queue: [],
  /** Assistant bubbles, in order (the session's answers, in order). */
  answers: [],

  /** (Re)connects with the current key, dropping any open socket. */
  restart() {
    this.refused = false;
    this.retries = 0;
    const old = this.socket;
    this.socket = null;
    old?.close(1000, 'new key');
    this.connect();
  },

  connect() {
    clearTimeout(this.timer);
    const key = getKey();
    if (!key) {
      setChatStatus('Enter an API key to chat.');
      return;
    }
    const url = new URL('/v1/chat', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    // The key goes in the first frame rather than the URL, which would end up in logs.
    const socket = new WebSocket(url);
    this.socket = socket;
    this.ready = false;
    setChatStatus('Connecting…');
    socket.addEventListener('open', () => socket.send(JSON.stringify({ type: 'auth', api_key: key })));
    socket.addEventListener('message', (event) => {
      if (socket !== this.socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onFrame(frame);
    });
    socket.addEventListener('close', (event) => {
      if (socket !== this.socket) return; // replaced on purpose
      this.ready = false;
      if (this.refused) return;
      // 1001: the server is going away; another instance will take the connection at once.
      const delay = event.code === 1001 ? 250 : Math.min(1000 * 2 ** this.retries, 15000);
      this.retries += 1;
      setChatStatus(event.code === 1001
        ? 'The server is restarting; reconnecting…'
        : `Disconnected; reconnecting in ${Math.round(delay / 1000) || 1} s…`, 'bad');
      this.timer = setTimeout(() => this.connect(), delay);
    });
  },

  onFrame(frame) {
    switch (frame.type) {
      case 'connection_ack': {
        const reconnected = this.everReady;
        this.ready = this.everReady = true;
        this.retries = 0;
        setChatStatus('Connected.', 'ok');
        for (const message of this.queue.splice(0)) this.socket.send(JSON.stringify(message));
        if (reconnected) this.recover();
        break;
      }
      case 'task_created': {
        const bubble = this.answers.find((b) => !b.taskId && !b.final);
        if (bubble) bubble.taskId = frame.task_id;
        break;
      }
      case 'stream_chunk': {
        const bubble = this.bubbleOf(frame.task_id);
        if (!bubble || bubble.final) break;
        if (bubble.chunks === 0) bubble.textNode.textContent = '';
        bubble.chunks += 1;
        bubble.li.dataset.chunks = String(bubble.chunks);
        bubble.textNode.append(frame.content ?? '');
        window.chatStats.streamChunks += 1;
        messagesList.scrollTop = messagesList.scrollHeight;
        break;
      }
      case 'tool_call': {
        let query = '';
        try { query = JSON.parse(frame.arguments ?? '{}').query ?? ''; } catch { /* shown without it */ }
        setChatStatus(query ? `Searching the documents for "${query}"…` : `Calling ${frame.name}…`, 'ok');
        break;
      }
      case 'tool_result': {
        const found = frame.passages?.length ?? 0;
        setChatStatus(frame.error ? `The search failed: ${frame.error}` : `Found ${found} passage${found === 1 ? '' : 's'}.`,
          frame.error ? 'bad' : 'ok');
        break;
      }
      case 'response': {
        const bubble = this.bubbleOf(frame.task_id);
        window.chatStats.responses += 1;
        if (bubble) this.finish(bubble, frame.answer ?? '', frame.citations ?? []);
        break;
      }
      case 'task_completed': {
        const bubble = this.bubbleOf(frame.task_id);
        if (bubble && !bubble.final) this.finish(bubble, bubble.textNode.textContent, []);
        break;
      }
      case 'error': {
        window.chatStats.errors += 1;
        const message = frame.message ?? frame.code ?? 'error';
        if (frame.code === 'unauthorized' && !this.ready) {
          this.refused = true;
          setChatStatus(`The API key was refused: ${message}`, 'bad');
          break;
        }
        // An error about a task, or about the message just sent (refused before a task).
        const bubble = frame.task_id
          ? this.bubbleOf(frame.task_id)
          : this.answers.find((b) => !b.taskId && !b.final);
        if (bubble) this.fail(bubble, message);
        else setChatStatus(`Error: ${message}`, 'bad');
        break;
      }
      default:
        break;
    }
  },

  /** The bubble of a task: the one bound to it, else the oldest still waiting for one. */
  bubbleOf(taskId) {
    let bubble = this.answers.find((b) => b.taskId === taskId);
    if (!bubble) {
      bubble = this.answers.find((b) => !b.taskId && !b.final);
      if (bubble) bubble.taskId = taskId;
    }
    return bubble;
  },

  finish(bubble, answer, citations) {
    bubble.final = true;
    bubble.textNode.textContent = answer;
    bubble.citations = citations;
    bubble.li.dataset.final = 'true';
    bubble.li.setAttribute('aria-busy', 'false');
    this.renderCitations(bubble);
    if (citations.some((c) => !documents.has(c.document_id))) refreshDocumentsSoon();
  },

  fail(bubble, message) {
    bubble.final = true;
    bubble.li.classList.add('failed');
    bubble.li.dataset.final = 'error';
    bubble.li.setAttribute('aria-busy', 'false');
    bubble.textNode.textContent = `Error: ${message}`;
  },

  /** Each citation says where its passage is and opens to show the passage itself. */
  renderCitations(bubble) {
    const sorted = [...bubble.citations].sort((a, b) => a.number - b.number);
    bubble.citesNode.replaceChildren(...sorted.map((c) => {
      const label = `[${c.number}] ${citationSource(c)}`;
      const attrs = { title: `${c.collection} · score ${Number(c.score).toFixed(3)}` };
      if (!c.passage) return h('li', attrs, label);
      return h('li', attrs, h('details', {},
        h('summary', {}, label),
        h('blockquote', { class: 'passage', 'data-testid': 'passage' }, c.passage)));
    }));
  },

  /** Citations that name their document only through the listing, once it has changed. */
  renameCitations() {
    for (const bubble of this.answers) {
      if (bubble.citations.some((c) => !c.title && !c.file_name)) this.renderCitations(bubble);
    }
  },

  /** After a reconnection: answers given while the socket was down, from the history. */
  async recover() {
    if (!this.answers.some((b) => !b.final)) return;
    try {
      const response = await fetch(`/v1/sessions/${sessionId}`, { headers: authHeaders() });
      if (!response.ok) return;
      const session = await readJson(response);
      const given = (session?.messages ?? []).filter((m) => m.role === 'assistant');
      this.answers.forEach((bubble, i) => {
        if (!bubble.final && given[i]) this.finish(bubble, given[i].content, given[i].citations ?? []);
      });
    } catch {
      // Nothing to recover from; live events will still come.
    }
  },

  send(text) {
    const agentId = agentInput.value.trim();
    if (!ID_RULE.test(agentId)) {
      setChatStatus('The agent id is 1 to 64 of letters, digits, _ and -.', 'bad');
      agentInput.focus();
      return false;
    }
    if (!requireKey((message) => setChatStatus(message, 'bad'))) return false;
    addBubble('user', text);
    this.answers.push(addBubble('assistant', '…'));
    const frame = { type: 'message', session_id: sessionId, agent_id: agentId, message: text };
    if (this.ready) this.socket.send(JSON.stringify(frame));
    else {
      this.queue.push(frame);
      if (!this.socket || this.refused) this.restart();
    }
    return true;
  },
};

chatForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = chatInput.value.trim();
  if (!text) return;
  if (chat.send(text)) chatInput.value = '';
  chatInput.focus();
});
chatInput.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    chatForm.requestSubmit();
  }
});

// ---- Start ------------------------------------------------------------------------------

try {
  keyInput.value = localStorage.getItem(KEY_STORAGE) ?? '';
} catch {
  // No storage: the key is typed each time.
}
applyKey();
document.body.dataset.ready = 'true';
