// The page's behaviour: read the filters, call GET /accounts, draw the table; on a click,
// call GET /accounts/{id}/score and draw its components as a waterfall. Data is put in
// the page with textContent only, never as HTML.
"use strict";

const PAGE_SIZE = 20;
// `request` numbers the loads: the answer to a superseded one (filters changed while it
// was on its way) is dropped, so the table always shows the latest filters.
const state = { params: null, cursor: null, request: 0 };

const $ = (selector) => document.querySelector(selector);

function element(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

const integer = new Intl.NumberFormat("en");
const percent = (fraction) =>
  fraction === null || fraction === undefined ? "n/a" : `${(fraction * 100).toFixed(2)} %`;
const count = (value) => (value === null || value === undefined ? "n/a" : integer.format(value));
const points = (value) => value.toFixed(2);

function problemText(body, response) {
  return body && body.detail ? body.detail : `${response.status} ${response.statusText}`;
}

async function getJson(url) {
  const response = await fetch(url, { headers: { accept: "application/json" } });
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (!response.ok) {
    const error = new Error(problemText(body, response));
    error.status = response.status;
    throw error;
  }
  return body;
}

function filterParams() {
  const params = new URLSearchParams();
  const tier = $("#tier").value;
  if (tier) params.append("tier", tier);
  const topic = $("#topic").value.trim();
  if (topic) params.set("topic", topic);
  const minCredibility = $("#min-credibility").value;
  if (minCredibility !== "") params.set("min_credibility", minCredibility);
  params.set("sort", $("#sort").value);
  params.set("limit", String(PAGE_SIZE));
  return params;
}

function setStatus(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function accountRow(item) {
  const row = element("tr", { "data-account-id": item.account_id });
  const nameCell = element("td");
  const button = element("button", { type: "button", class: "account" }, item.account_id);
  button.addEventListener("click", () => showAccount(item.account_id));
  nameCell.append(button);
  row.append(
    nameCell,
    element("td", {}, item.tier),
    element("td", { class: "number" }, count(item.followers)),
    element("td", { class: "number" }, percent(item.engagement_rate)),
    element("td", { class: "number credibility" }, points(item.credibility)),
    element("td", { class: "number" }, item.confidence.toFixed(2)),
  );
  return row;
}

async function loadPage(append) {
  const params = new URLSearchParams(state.params);
  if (append && state.cursor) params.set("cursor", state.cursor);
  const request = ++state.request;
  setStatus("Loading…");
  $("#accounts").setAttribute("aria-busy", "true");
  try {
    const body = await getJson(`/accounts?${params}`);
    if (request !== state.request) return;
    const rows = $("#accounts tbody");
    if (!append) rows.replaceChildren();
    for (const item of body.items) rows.append(accountRow(item));
    state.cursor = body.next_cursor;
    $("#more").hidden = !body.next_cursor;
    const shown = rows.children.length;
    let text = shown ? `${shown} accounts shown.` : "No account matches these filters yet.";
    if (body.partial) {
      text += ` Partial: partitions ${body.missing_partitions.join(", ")} did not answer.`;
    }
    setStatus(text, body.partial);
  } catch (error) {
    if (request !== state.request) return;
    if (append && error.status === 410) {
      // The cursor's moment is no longer held (too old, or a partition moved): the list
      // starts again from the top rather than page on in another order.
      await loadPage(false);
      setStatus(`${$("#status").textContent} Reloaded from the top: the list had expired.`);
      return;
    }
    setStatus(`Could not load accounts: ${error.message}`, true);
  } finally {
    if (request === state.request) $("#accounts").removeAttribute("aria-busy");
  }
}

function definitions(list, pairs) {
  list.replaceChildren();
  for (const [term, value] of pairs) {
    list.append(element("dt", {}, term), element("dd", {}, value));
  }
}

function signedPoints(value) {
  return value < 0 ? `-${points(-value)}` : `+${points(value)}`;
}

function drawWaterfall(score) {
  // Points that add first, largest first, then those that take away: each bar starts
  // where the one before it ended, so the last one ends at the credibility.
  const components = Object.entries(score.components)
    .sort((a, b) => b[1].points - a[1].points);
  const list = $("#waterfall");
  list.replaceChildren();
  let running = 0;
  for (const [name, component] of components) {
    const item = element("li", { class: "component", "data-component": name });
    const head = element("div", { class: "component-head" });
    head.append(
      element("span", { class: "component-name" }, name.replaceAll("_", " ")),
      element("span", { class: "component-points" }, signedPoints(component.points)),
    );
    const track = element("div", { class: "track", "aria-hidden": "true" });
    const bar = element("div", { class: "bar" });
    const from = Math.min(running, running + component.points);
    bar.style.marginLeft = `${Math.max(0, Math.min(100, from))}%`;
    bar.style.width = `${Math.max(Math.abs(component.points), 0.3)}%`;
    bar.classList.add(component.points < 0 ? "hurts" : "helps");
    track.append(bar);
    const evidence = element("p", { class: "evidence" }, component.evidence);
    const facts = [`weight ${component.weight}`, `value ${component.value}`,
      `confidence ${component.confidence}`];
    if (component.role) facts.unshift(component.role);
    if (component.factor !== undefined && component.factor !== null) {
      facts.push(`factor ${component.factor}`);
    }
    const detail = element("p", { class: "component-detail" }, facts.join(", "));
    item.append(head, track, evidence, detail);
    list.append(item);
    running += component.points;
  }
  const total = $("#waterfall-total");
  total.replaceChildren(
    "Sum of the points: ",
    element("strong", { id: "points-sum" }, points(running)),
    " of 100; credibility ",
    element("strong", { id: "credibility" }, points(score.credibility)),
    ` (points are rounded to 0.01 each).`,
  );
}

async function showAccount(accountId) {
  const detail = $("#detail");
  try {
    const score = await getJson(`/accounts/${encodeURIComponent(accountId)}/score`);
    $("#detail-title").textContent = score.account_id;
    $("#detail-summary").textContent =
      `${score.tier} (${score.tier_scheme} tiers), ${count(score.followers)} followers, ` +
      `engagement ${percent(score.engagement_rate)}, credibility ` +
      `${points(score.credibility)} with confidence ${score.confidence.toFixed(2)}; ` +
      `window of ${score.window_days} days up to ${score.as_of ?? "n/a"}.`;
    drawWaterfall(score);
    const counts = score.counts;
    definitions($("#counts"), [
      ["posts", count(counts.posts)],
      ["likes", count(counts.likes)],
      ["comments", count(counts.comments)],
      ["shares", count(counts.shares)],
      ["sponsored posts", count(counts.sponsored_posts)],
      ["awaiting their post", count(counts.awaiting_post)],
    ]);
    const engagement = score.engagement;
    definitions($("#engagement"), [
      ["rate", percent(engagement.rate)],
      ["weighted rate", percent(engagement.weighted_rate)],
      ["normal for the size", percent(engagement.expected_rate)],
      ["posts with a follower count", `${engagement.posts_with_followers} of ${engagement.posts}`],
      ["mean followers at posting", count(engagement.mean_followers_at_post === null
        ? null : Math.round(engagement.mean_followers_at_post))],
      ["denominator", engagement.denominator],
    ]);
    detail.hidden = false;
    detail.scrollIntoView({ block: "start" });
  } catch (error) {
    setStatus(`Could not load ${accountId}: ${error.message}`, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.params = filterParams().toString();
    state.cursor = null;
    loadPage(false);
  });
  $("#more").addEventListener("click", () => loadPage(true));
  state.params = filterParams().toString();
  loadPage(false);
});
