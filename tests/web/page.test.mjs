// End-to-end test of the gateway's web page in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core): key, upload with live progress, collections, streamed chat
// answer with a citation of the uploaded file. Run by scripts/web-test, which starts
// `domain-actions dev`:
//
//   node tests/web/page.test.mjs <base url> <api key> [screenshot path]
//
// Exits 0 when every check passes, 1 with the failed check's message otherwise; bounded to
// 120 s in all.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [base, apiKey, screenshot = 'target/web-test/page.png'] = process.argv.slice(2);
if (!base || !apiKey) {
  console.error('usage: node tests/web/page.test.mjs <base url> <api key> [screenshot path]');
  process.exit(2);
}

const OVERALL_MS = 120_000;
const started = Date.now();
const FILE_NAME = 'port-elara.md';
const SENTENCE = 'The lighthouse keeper of Port Elara feeds the gulls at dawn.';
const DOCUMENT = `# Port Elara

${SENTENCE}

The harbour master counts the fishing boats every evening and rings the bell at nine.
The baker on Quay Street sells rye bread on Tuesdays.
`;
const QUESTION = 'Who feeds the gulls at dawn?';

let step = 'starting';
const seconds = () => ((Date.now() - started) / 1000).toFixed(1);
function begin(name) {
  step = name;
  console.log(`web test [${seconds()} s] ${name}`);
}
/** The smaller of `ms` and what is left of the overall budget (leaving time to report). */
const budget = (ms) => Math.max(1000, Math.min(ms, OVERALL_MS - 5000 - (Date.now() - started)));

class Failure extends Error {}
function check(condition, message) {
  if (!condition) throw new Failure(message);
}

const overall = setTimeout(() => {
  console.error(`web test FAILED: over ${OVERALL_MS / 1000} s in all (while: ${step})`);
  process.exit(1);
}, OVERALL_MS);
overall.unref();

const pageErrors = [];
const consoleLines = [];
let browser;
let page;
const work = await mkdtemp(path.join(tmpdir(), 'da-web-test-'));
let code = 0;

try {
  const file = path.join(work, FILE_NAME);
  await writeFile(file, DOCUMENT);

  begin('launching chromium');
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    timeout: budget(30_000),
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
  page.on('response', (r) => r.status() >= 400 && consoleLines.push(`http ${r.status()}: ${r.request().method()} ${r.url()}`));
  page.on('requestfailed', (r) => consoleLines.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));

  begin(`opening ${base}/`);
  const response = await page.goto(`${base}/`, { timeout: budget(15_000) });
  check(response?.ok(), `GET / answered ${response?.status()}`);
  check((await page.title()) === 'Domain Actions', `the page's title is ${await page.title()}`);
  const byId = (id) => page.getByTestId(id);
  try {
    await page.locator('body[data-ready="true"]').waitFor({ timeout: budget(10_000) });
  } catch {
    throw new Failure('the page\'s script did not start (is /assets/app.js served? see the console below)');
  }

  begin('entering the API key');
  await byId('api-key').fill(apiKey);
  await byId('api-key').press('Enter');
  await byId('key-status').filter({ hasText: 'Saved' }).waitFor({ timeout: budget(5_000) });
  check(await page.evaluate(() => localStorage.getItem('domain-actions.api-key')) === apiKey,
    'the key is not in localStorage');

  begin('uploading a file of an unsupported type (the API\'s error is shown)');
  check(await byId('collection').inputValue() === 'docs', 'the collection field does not default to "docs"');
  await byId('file-input').setInputFiles({ name: 'tool.exe', mimeType: 'application/octet-stream',
    buffer: Buffer.from([0x4d, 0x5a, 0x90, 0x00, 0xff, 0xfe, 0x00, 0x01]) });
  await byId('upload').click();
  const uploadError = byId('upload-error');
  try {
    await uploadError.filter({ hasText: 'Upload failed: ' }).waitFor({ timeout: budget(10_000) });
  } catch {
    throw new Failure(`no error shown for an unsupported file: "${await uploadError.innerText()}"`);
  }
  console.log(`web test: ${await uploadError.innerText()}`);

  begin(`uploading ${FILE_NAME}`);
  await byId('file-input').setInputFiles(file);
  await byId('upload').click();
  const task = byId(`task-${FILE_NAME}`);
  try {
    await task.waitFor({ timeout: budget(15_000) });
  } catch {
    const error = await byId('upload-error').textContent();
    throw new Failure(`no progress row for ${FILE_NAME} after Upload${error ? `: ${error}` : ''}`);
  }
  check(await uploadError.textContent() === '', 'the previous upload error is still shown');

  begin('waiting for the upload to complete (live progress)');
  try {
    await page.waitForFunction(
      (testId) => ['completed', 'failed'].includes(
        document.querySelector(`[data-testid="${testId}"]`)?.dataset.status),
      `task-${FILE_NAME}`,
      { timeout: budget(60_000) },
    );
  } catch {
    throw new Failure(`${FILE_NAME} did not complete within 60 s: "${await task.innerText()}"`);
  }
  const taskText = await task.innerText();
  check(await task.getAttribute('data-status') === 'completed', `${FILE_NAME} failed: "${taskText}"`);
  check(/completed/.test(taskText), `the status text does not read completed: "${taskText}"`);
  check(await task.locator('progress').evaluate((bar) => bar.value) === 100, 'the progress bar is not full');

  begin('waiting for the collections list to show the document');
  const docs = byId('documents');
  try {
    await docs.getByText(FILE_NAME).first().waitFor({ timeout: budget(15_000) });
  } catch {
    throw new Failure(`the collections list does not name ${FILE_NAME}: "${await docs.innerText()}"`);
  }
  check((await docs.innerText()).includes('docs'), 'the collections list has no "docs" collection');

  begin('waiting for the chat connection');
  const chatStatus = byId('chat-status');
  try {
    await chatStatus.filter({ hasText: /^Connected\.$/ }).waitFor({ timeout: budget(15_000) });
  } catch {
    throw new Failure(`the chat did not connect: "${await chatStatus.innerText()}"`);
  }

  begin(`asking "${QUESTION}"`);
  await byId('chat-input').fill(QUESTION);
  await byId('send').click();
  const answer = byId('answer');
  try {
    await page.waitForFunction(
      () => document.querySelector('[data-testid="answer"]')?.dataset.final,
      null,
      { timeout: budget(60_000) },
    );
  } catch {
    throw new Failure(`no final answer within 60 s; the bubble reads "${await answer.innerText()}", `
      + `chat status "${await chatStatus.innerText()}"`);
  }
  const answerText = await answer.locator('.text').innerText();
  check(await answer.getAttribute('data-final') === 'true', `the agent answered with an error: "${answerText}"`);
  console.log(`web test: answer: ${answerText.replace(/\s+/g, ' ').slice(0, 300)}`);
  check(/lighthouse keeper/i.test(answerText), `the answer does not mention the lighthouse keeper: "${answerText}"`);

  const chunks = Number(await answer.getAttribute('data-chunks'));
  const stats = await page.evaluate(() => window.chatStats);
  console.log(`web test: ${chunks} stream_chunk frames before the response (page totals ${JSON.stringify(stats)})`);
  check(chunks >= 1, 'no stream_chunk arrived before the response');
  check(stats.responses >= 1, 'no response frame was counted');

  const citations = byId('citations');
  const citationsText = await citations.innerText();
  console.log(`web test: citations: ${citationsText.replace(/\n/g, ' | ')}`);
  check(citationsText.includes(FILE_NAME), `the citations do not name ${FILE_NAME}: "${citationsText}"`);
  check(/^\[\d+\] Port Elara \(port-elara\.md\)/m.test(citationsText),
    `the citations are not "[n] title (file name)…": "${citationsText}"`);
  // A citation opens to show the passage it stands for.
  begin('opening the first citation');
  await citations.locator('summary').first().click();
  const passage = citations.getByTestId('passage').first();
  try {
    await passage.waitFor({ state: 'visible', timeout: budget(5_000) });
  } catch {
    throw new Failure(`the first citation does not open to its passage: "${citationsText}"`);
  }
  const passageText = await passage.innerText();
  console.log(`web test: first cited passage: ${passageText.replace(/\s+/g, ' ').slice(0, 200)}`);
  check(passageText.includes(SENTENCE), `the opened passage does not quote the document: "${passageText}"`);

  check(pageErrors.length === 0, `the page threw: ${pageErrors.join('; ')}`);
  // The gateway's Content-Security-Policy must allow everything the page really does.
  const blocked = consoleLines.filter((line) => /Content Security Policy/i.test(line));
  check(blocked.length === 0, `the Content-Security-Policy blocked: ${blocked.join('; ')}`);
  begin('all checks passed');
} catch (err) {
  code = 1;
  const message = err instanceof Failure ? err.message : `${err.name}: ${err.message}`;
  console.error(`web test FAILED (while: ${step}): ${message}`);
  if (pageErrors.length) console.error(`page errors:\n  ${pageErrors.join('\n  ')}`);
  if (consoleLines.length) console.error(`browser console:\n  ${consoleLines.slice(-30).join('\n  ')}`);
} finally {
  if (page) {
    try {
      await mkdir(path.dirname(screenshot), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true, timeout: 10_000 });
      console.log(`web test: screenshot ${screenshot}`);
    } catch (err) {
      console.error(`web test: no screenshot: ${err.message}`);
    }
  }
  await browser?.close().catch(() => {});
  await rm(work, { recursive: true, force: true });
}

console.log(`web test: ${code === 0 ? 'passed' : 'failed'} in ${seconds()} s`);
process.exit(code);
