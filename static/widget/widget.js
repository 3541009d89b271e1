/*
 * callsphere chat widget. Embed with one tag:
 *   <script src="https://YOUR-CALLSPHERE/widget.js" data-tenant="PUBLIC_KEY" async></script>
 * Optional: data-open="1" opens the panel at load; data-link="<signed token>" continues an identified chat.
 *
 * No framework; everything lives in a Shadow DOM so the host page's CSS does not leak in and ours does not leak
 * out. Text is always inserted with textContent (never HTML). The visitor id (the "cookie" identifier) is kept
 * in localStorage. Reconnects with backoff; on reconnect it asks for turns after the last one shown (seq) and
 * resends unacknowledged messages with their original ids, so nothing is lost or shown twice.
 * After a session closes the server may push a satisfaction survey: five star buttons, one tap answers. The server
 * pushes it again after each hello while it is unanswered (a reload or a dropped connection); a tap made while
 * disconnected is sent after the next hello; the server records the first answer only.
 * Protocol: see channels_app/chat/consumer.py.
 */
(function () {
  "use strict";
  var script = document.currentScript || (function () {
    var all = document.querySelectorAll("script[data-tenant]");
    return all[all.length - 1];
  })();
  if (!script || window.__callsphereWidget) { return; }
  window.__callsphereWidget = true;

  var key = script.getAttribute("data-tenant") || "";
  var link = script.getAttribute("data-link") || "";
  var openAtLoad = script.getAttribute("data-open") === "1" || !!link;
  var base = new URL(script.src, window.location.href);
  var wsUrl = (base.protocol === "https:" ? "wss:" : "ws:") + "//" + base.host + "/ws/chat/?key=" + encodeURIComponent(key);

  function randomId() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID().replace(/-/g, ""); }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function storage(kind) { try { return window[kind]; } catch (e) { return null; } }
  var local = storage("localStorage");
  var visitorKey = "callsphere.visitor." + key;
  var visitor = (local && local.getItem(visitorKey)) || randomId();
  if (local) { try { local.setItem(visitorKey, visitor); } catch (e) { /* private mode */ } }

  // ---- DOM (shadow root) -------------------------------------------------------------------------------------
  var host = document.createElement("div");
  host.id = "callsphere-widget";
  host.style.cssText = "all: initial; position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;";
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var style = document.createElement("style");
  style.textContent = [
    ":host { all: initial; }",
    "* { box-sizing: border-box; font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; font-size: 14px; letter-spacing: normal; }",
    ".cs-launcher { border: 0; border-radius: 28px; padding: 14px 20px; background: #1f6feb; color: #fff; cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.25); font-weight: 600; }",
    ".cs-panel { display: none; flex-direction: column; width: 340px; height: 480px; max-height: 80vh; background: #fff; color: #1b1f24; border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.3); overflow: hidden; margin-bottom: 10px; }",
    ".cs-open .cs-panel { display: flex; }",
    ".cs-head { background: #1f6feb; color: #fff; padding: 12px 14px; display: flex; justify-content: space-between; align-items: center; font-weight: 600; }",
    ".cs-close { background: transparent; border: 0; color: #fff; font-size: 18px; cursor: pointer; padding: 0 4px; }",
    ".cs-log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 8px; background: #f6f8fa; }",
    ".cs-msg { max-width: 85%; padding: 8px 11px; border-radius: 12px; white-space: pre-wrap; word-wrap: break-word; line-height: 1.4; }",
    ".cs-agent, .cs-staff { align-self: flex-start; background: #fff; border: 1px solid #d0d7de; }",
    ".cs-who { font-size: 11px; font-weight: 600; color: #57606a; margin-bottom: 2px; }",
    ".cs-customer { align-self: flex-end; background: #1f6feb; color: #fff; }",
    ".cs-pending { opacity: .6; }",
    ".cs-failed { background: #cf222e; }",
    ".cs-note { align-self: center; color: #57606a; font-size: 12px; }",
    ".cs-typing { min-height: 18px; padding: 0 12px; color: #57606a; font-size: 12px; background: #f6f8fa; }",
    ".cs-form { display: flex; border-top: 1px solid #d0d7de; }",
    ".cs-input { flex: 1; border: 0; padding: 12px; outline: none; resize: none; color: #1b1f24; background: #fff; }",
    ".cs-send { border: 0; background: #1f6feb; color: #fff; padding: 0 16px; cursor: pointer; font-weight: 600; }",
    ".cs-status { font-size: 11px; font-weight: normal; opacity: .85; }",
    ".cs-survey { align-self: stretch; background: #fff; border: 1px solid #d0d7de; border-radius: 12px; padding: 10px; text-align: center; }",
    ".cs-stars { display: flex; justify-content: center; gap: 4px; margin-top: 6px; }",
    ".cs-star { border: 0; background: transparent; font-size: 30px; line-height: 1; min-width: 44px; min-height: 44px; cursor: pointer; color: #d0d7de; padding: 0; }",
    ".cs-star.cs-on { color: #e3a008; }",
    "@media (max-width: 480px) { .cs-panel { width: calc(100vw - 24px); height: 75vh; } }"
  ].join("\n");
  root.appendChild(style);

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  var wrap = el("div", "cs-wrap");
  var panel = el("div", "cs-panel");
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", "Chat");
  var head = el("div", "cs-head");
  var title = el("span", "cs-title", "Chat with us ");
  var status = el("span", "cs-status", "");
  title.appendChild(status);
  var closeBtn = el("button", "cs-close", "\u00d7");
  closeBtn.setAttribute("aria-label", "Close chat");
  head.appendChild(title);
  head.appendChild(closeBtn);
  var log = el("div", "cs-log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  var typing = el("div", "cs-typing", "");
  var form = el("form", "cs-form");
  var input = el("textarea", "cs-input");
  input.rows = 1;
  input.maxLength = 2000;
  input.placeholder = "Type a message…";
  input.setAttribute("aria-label", "Message");
  var sendBtn = el("button", "cs-send", "Send");
  sendBtn.type = "submit";
  form.appendChild(input);
  form.appendChild(sendBtn);
  panel.appendChild(head);
  panel.appendChild(log);
  panel.appendChild(typing);
  panel.appendChild(form);
  var launcher = el("button", "cs-launcher", "Chat with us");
  launcher.setAttribute("aria-label", "Open chat");
  wrap.appendChild(panel);
  wrap.appendChild(launcher);
  root.appendChild(wrap);

  // ---- state -------------------------------------------------------------------------------------------------
  var ws = null;
  var ready = false;          // hello answered on the current connection
  var lastSeq = -1;           // highest transcript seq shown
  var shown = {};             // seq -> true (seqs count turns of one session)
  var sessionId = null;       // the session (interaction) the seqs belong to
  var outbox = [];            // [{id, text, node}] sent but not yet acknowledged (resent after reconnect)
  var attempts = 0;
  var started = false;
  var ephemeralGreeting = null;

  function scroll() { log.scrollTop = log.scrollHeight; }
  function bubble(role, text, seq) {
    var node = el("div", "cs-msg cs-" + role, text);
    if (seq !== null && seq !== undefined) { node.setAttribute("data-seq", String(seq)); }
    log.appendChild(node);
    scroll();
    return node;
  }
  function note(text) { var n = el("div", "cs-note", text); log.appendChild(n); scroll(); }
  function markShown(seq) { shown[seq] = true; if (seq > lastSeq) { lastSeq = seq; } }
  // A verified phone or email can switch the visitor to another session whose numbering starts again at 0:
  // forget the old session's seqs so its replies are not dropped as already shown.
  function syncSession(frame) {
    if (!frame.session || frame.session === sessionId) { return; }
    if (sessionId !== null) { shown = {}; lastSeq = -1; }
    sessionId = frame.session;
  }

  function onFrame(frame) {
    if (!frame || typeof frame !== "object") { return; }
    if (frame.type === "hello") {
      ready = true;
      attempts = 0;
      status.textContent = "";
      link = "";  // the link identified us; from now on the visitor id does
      for (var i = 0; i < outbox.length; i++) { transmit(outbox[i]); }
      sendSurveyAnswer();
    } else if (frame.type === "message") {
      syncSession(frame);
      if (shown[frame.seq]) { return; }
      var pending = null;
      for (var j = 0; j < outbox.length; j++) { if (outbox[j].id === frame.id) { pending = outbox[j]; outbox.splice(j, 1); break; } }
      if (pending) {
        pending.node.classList.remove("cs-pending");
        pending.node.setAttribute("data-seq", String(frame.seq));
      } else {
        bubble("customer", frame.text, frame.seq);
      }
      markShown(frame.seq);
    } else if (frame.type === "reply") {
      if (frame.seq === null || frame.seq === undefined) {
        if (!ephemeralGreeting && log.querySelectorAll(".cs-msg").length === 0) { ephemeralGreeting = bubble("agent", frame.text, null); }
        return;
      }
      syncSession(frame);
      if (shown[frame.seq]) { return; }
      var shownNode = bubble(frame.role === "staff" ? "staff" : "agent", frame.text, frame.seq);
      if (frame.role === "staff" && frame.name) { shownNode.insertBefore(el("div", "cs-who", String(frame.name)), shownNode.firstChild); }
      markShown(frame.seq);
      typing.textContent = "";
    } else if (frame.type === "survey") {
      showSurvey(frame);
    } else if (frame.type === "survey_thanks") {
      if (survey) { survey.textContent = frame.text || "Thank you!"; survey = null; }
      if (frame.survey) { answeredSurvey = frame.survey; }
      surveyAnswer = null;
    } else if (frame.type === "typing") {
      typing.textContent = frame.on ? "Typing…" : "";
    } else if (frame.type === "error") {
      handleError(frame);
    }
  }

  // The satisfaction survey: five stars (44 px targets for thumbs); a tap sends {"type": "csat", "score": n}.
  var survey = null;          // the stars while unanswered
  var surveyAnswer = null;    // {type: "csat", survey, score} tapped, not yet thanked (resent after a reconnect)
  var answeredSurvey = null;  // the survey id thanked on this page
  function sendSurveyAnswer() {
    if (surveyAnswer && ws && ready && ws.readyState === 1) { ws.send(JSON.stringify(surveyAnswer)); }
  }
  function showSurvey(frame) {
    if (survey || (frame.survey && frame.survey === answeredSurvey)) { return; }
    survey = el("div", "cs-survey");
    survey.setAttribute("role", "group");
    survey.setAttribute("aria-label", String(frame.question || "How did we do?"));
    survey.appendChild(el("div", "cs-question", String(frame.question || "How did we do?")));
    var row = el("div", "cs-stars");
    var stars = [];
    for (var n = 1; n <= 5; n++) {
      (function (score) {
        var star = el("button", "cs-star", "\u2605");
        star.type = "button";
        star.setAttribute("aria-label", score + (score === 1 ? " star" : " stars"));
        star.addEventListener("click", function () {
          for (var k = 0; k < stars.length; k++) { stars[k].classList.toggle("cs-on", k < score); stars[k].disabled = true; }
          surveyAnswer = { type: "csat", survey: frame.survey, score: score };
          sendSurveyAnswer();
        });
        stars.push(star);
        row.appendChild(star);
      })(n);
    }
    survey.appendChild(row);
    log.appendChild(survey);
    scroll();
  }

  function handleError(frame) {
    var item = null;
    for (var i = 0; i < outbox.length; i++) { if (outbox[i].id === frame.id) { item = outbox[i]; } }
    if (frame.code === "rate_limited" && item) {
      setTimeout(function () { if (outbox.indexOf(item) >= 0) { transmit(item); } }, (frame.retry_after || 5) * 1000);
      note("You're sending messages quickly — we'll send yours in a moment.");
    } else if (item) {
      outbox.splice(outbox.indexOf(item), 1);
      item.node.classList.remove("cs-pending");
      item.node.classList.add("cs-failed");
      note(frame.message || "Message not sent.");
    } else if (surveyAnswer && (frame.code === "no_survey" || frame.code === "bad_score")) {
      surveyAnswer = null;
      if (survey) { survey.textContent = frame.message || "This survey is closed."; survey = null; }
    } else if (frame.code === "link_invalid" || frame.code === "link_expired" || frame.code === "link_used") {
      link = "";
      note(frame.code === "link_used"
        ? "This chat link was already opened on another device. You can still chat — tell us your phone number to continue."
        : "This chat link has expired. You can still chat — tell us your phone number to continue.");
      if (ws) { ws.close(); }
    } else {
      note(frame.message || "Something went wrong.");
    }
  }

  function transmit(item) {
    if (ws && ready && ws.readyState === 1) { ws.send(JSON.stringify({ type: "message", id: item.id, text: item.text })); }
  }

  function connect() {
    ready = false;
    status.textContent = attempts ? "(reconnecting…)" : "(connecting…)";
    try { ws = new WebSocket(wsUrl); } catch (e) { schedule(); return; }
    ws.onopen = function () {
      var hello = { type: "hello", visitor: visitor, last_seq: lastSeq };
      if (link) { hello.link = link; }
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      onFrame(frame);
    };
    ws.onclose = function () { ready = false; ws = null; schedule(); };
    ws.onerror = function () { /* onclose follows */ };
  }
  function schedule() {
    attempts += 1;
    status.textContent = "(reconnecting…)";
    var delay = Math.min(15000, 500 * Math.pow(2, Math.min(attempts, 5))) * (0.75 + Math.random() / 2);
    setTimeout(connect, delay);
  }

  function open() {
    wrap.classList.add("cs-open");
    launcher.style.display = "none";
    if (!started) { started = true; connect(); }
    input.focus();
  }
  launcher.addEventListener("click", open);
  closeBtn.addEventListener("click", function () { wrap.classList.remove("cs-open"); launcher.style.display = ""; });

  var lastTyping = 0;
  input.addEventListener("input", function () {
    var now = Date.now();
    if (ws && ready && now - lastTyping > 3000) { lastTyping = now; ws.send(JSON.stringify({ type: "typing" })); }
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); submit(); }
  });
  form.addEventListener("submit", function (event) { event.preventDefault(); submit(); });
  function submit() {
    var text = input.value.replace(/^\s+|\s+$/g, "");
    if (!text) { return; }
    input.value = "";
    var item = { id: randomId(), text: text, node: bubble("customer cs-pending", text, null) };
    outbox.push(item);
    transmit(item);
  }

  function mount() {
    document.body.appendChild(host);
    if (openAtLoad) { open(); }
  }
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
