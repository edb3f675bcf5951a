/*
 * omnihub web chat widget.
 *
 * Embed with one tag:  <script src="https://HUB/static/widget.js" defer></script>
 * Optional attributes: data-lang="en" | "zh-CN", data-title="Support",
 * data-telegram="on" (a "Continue on Telegram" button; the hub must have the Telegram channel on).
 *
 * Wire contract: docs/api.md ("Web chat") and docs/webchat-protocol.md.
 * Plain ES2020, no dependencies: the widget runs on other people's pages, so it
 * must not assume any framework, and it only talks to the hub it was loaded from.
 */
(() => {
  "use strict";

  // A page that includes the tag twice must still get one widget.
  if (window.__omnihubWidget) return;
  window.__omnihubWidget = true;

  const script = document.currentScript;
  if (!script || !script.src) return;

  const TOKEN_KEY = "omnihub.webchat.token";
  const UNACKED_KEY = "omnihub.webchat.unacked";
  const TYPING_SEND_MS = 2000;
  const TYPING_SHOW_MS = 3000;
  const BACKOFF_MAX_MS = 30000;
  // A socket can look open yet be dead (half-open TCP, a hub process shutting down): when an
  // ack is this late we give up on the socket and reconnect, which resends the message.
  const ACK_TIMEOUT_MS = 10000;
  // The server closes the socket on frames over 64 KiB; a message that can never be
  // accepted must not be resent forever, so it is refused here instead.
  const MAX_FRAME_BYTES = 60000;

  const STRINGS = {
    en: {
      launcher: "Chat with us",
      title: "Chat with us",
      close: "Close chat",
      welcome: "Hi! How can we help you today?",
      inputLabel: "Your message",
      placeholder: "Type your message…",
      hint: "Enter to send, Shift+Enter for a new line",
      send: "Send",
      customer: "You",
      agent: "Agent",
      bot: "Bot",
      system: "System",
      sending: "Sending…",
      sent: "Sent",
      read: "Seen",
      failed: "Not sent",
      typing: "Agent is typing…",
      unread: "new message",
      newMessages: "New messages ↓",
      connecting: "Connecting…",
      offline: "You are offline. Messages you write now are kept and sent when the connection is back.",
      reconnecting: "Connection lost. Reconnecting… Messages you write now are kept and sent when it is back.",
      charsLeft: "Characters left: {left} of {max}",
      charsOver: "Over the limit of {max} characters by {over}",
      log: "Chat messages",
      files: "Files",
      attach: "Send a file",
      telegram: "Continue on Telegram",
      telegramOpen: "Open Telegram and press Start",
      err_attachment_too_large: "This file is too large to send.",
      err_too_many_attachments: "Please send at most 5 files at a time.",
      err_file_rate_limited: "You are sending files too quickly. Please wait a minute and try again.",
      err_file_failed: "Your file could not be sent. Please try again.",
      err_telegram_failed: "Telegram is not available right now. Please try again later.",
      err_text_too_long: "Your message is too long. Please shorten it and send it again.",
      err_text_over_limit: "Your message is longer than the limit of {max} characters. It is still in the box: please shorten it and send it again.",
      err_empty_text: "Please type a message first.",
      err_rate_limited: "You are sending messages too quickly. We will retry in a moment.",
      err_storage_unavailable: "We could not save your message yet. We will retry in a moment.",
      err_frame_too_large: "Your message is too long. Please shorten it and send it again.",
      err_generic: "Something went wrong. Please try again.",
      // "Call us" (callUi below)
      call: "Call us",
      callRegion: "Call",
      callConnecting: "Connecting your call…",
      callActive: "In call",
      callEnded: "Call ended",
      callHangUp: "Hang up",
      callMute: "Mute microphone",
      callKeypad: "Keypad",
      callKeyStar: "Star",
      callKeyPound: "Pound",
      callMicDenied: "Microphone access was refused. To call us, allow the microphone for this site in your browser and press Call us again.",
      callMicMissing: "No microphone was found. Connect one and press Call us again.",
      callBusy: "All our lines are busy. Please try again in a few minutes.",
      callElsewhere: "You are already in a call with us in another window.",
      callFailed: "The call could not be connected. Please try again.",
      callDropped: "The call was cut off.",
    },
    "zh-CN": {
      launcher: "联系我们",
      title: "联系我们",
      close: "关闭聊天",
      welcome: "您好！请问有什么可以帮您？",
      inputLabel: "您的消息",
      placeholder: "请输入消息…",
      hint: "按 Enter 发送，Shift+Enter 换行",
      send: "发送",
      customer: "您",
      agent: "客服",
      bot: "机器人",
      system: "系统",
      sending: "发送中…",
      sent: "已发送",
      read: "已读",
      failed: "未发送",
      typing: "客服正在输入…",
      unread: "新消息",
      newMessages: "新消息 ↓",
      connecting: "正在连接…",
      offline: "您已离线。现在写的消息会保留，连接恢复后自动发送。",
      reconnecting: "连接已断开，正在重新连接…现在写的消息会保留，恢复后自动发送。",
      charsLeft: "还可输入 {left} 字（上限 {max} 字）",
      charsOver: "超出上限 {max} 字，多了 {over} 字",
      log: "聊天记录",
      files: "文件",
      attach: "发送文件",
      telegram: "在 Telegram 上继续",
      telegramOpen: "打开 Telegram 并点击“开始”",
      err_attachment_too_large: "文件太大，无法发送。",
      err_too_many_attachments: "每次最多发送 5 个文件。",
      err_file_rate_limited: "发送文件太频繁，请稍等一分钟再试。",
      err_file_failed: "文件未能发送，请重试。",
      err_telegram_failed: "暂时无法使用 Telegram，请稍后再试。",
      err_text_too_long: "消息太长，请缩短后重新发送。",
      err_text_over_limit: "消息超过 {max} 字的上限，内容仍保留在输入框中，请缩短后重新发送。",
      err_empty_text: "请先输入消息内容。",
      err_rate_limited: "发送太频繁，稍后将自动重试。",
      err_storage_unavailable: "消息暂未保存，稍后将自动重试。",
      err_frame_too_large: "消息太长，请缩短后重新发送。",
      err_generic: "出错了，请重试。",
      // "Call us" (callUi below)
      call: "给我们打电话",
      callRegion: "通话",
      callConnecting: "正在接通…",
      callActive: "通话中",
      callEnded: "通话已结束",
      callHangUp: "挂断",
      callMute: "麦克风静音",
      callKeypad: "拨号键盘",
      callKeyStar: "星号",
      callKeyPound: "井号",
      callMicDenied: "麦克风权限被拒绝。如需通话，请在浏览器中允许本网站使用麦克风，然后再次点击“给我们打电话”。",
      callMicMissing: "未找到麦克风。请连接麦克风后再次点击“给我们打电话”。",
      callBusy: "所有线路都在忙，请过几分钟再试。",
      callElsewhere: "您已在另一个窗口中与我们通话。",
      callFailed: "通话未能接通，请重试。",
      callDropped: "通话已中断。",
    },
  };

  const hubBase = deriveHubBase(script.src);
  const lang = pickLanguage(script.getAttribute("data-lang"));
  const T = STRINGS[lang];
  const title = script.getAttribute("data-title") || T.title;
  const store = safeStorage();

  const state = {
    token: store.get(TOKEN_KEY),
    conversationId: null,
    ws: null,
    connecting: false,
    started: false,
    attempt: 0,
    reconnectTimer: null,
    ackWatchdog: null,
    lastTypingSent: 0,
    typingTimer: null,
    unacked: loadUnacked(),
    byMessageId: new Map(), // message_id -> element, to drop duplicates from history/socket
    byClientId: new Map(), // client_id -> element, to mark a pending message sent on ack
    sessionPending: null, // the session request in flight, shared by whoever needs it
    maxText: null, // the hub's text limit in characters, from the session response
    pinned: true, // the log follows new messages until the customer scrolls up to read
    autoScrollTop: -1, // where we last scrolled the log ourselves (that scroll is not theirs)
    unseen: [], // messages that arrived while the customer was scrolled up
    newestIncoming: 0, // the newest message id from the business side shown in the log
    receipted: { delivered: 0, read: 0 }, // up_to of the receipts sent
    receiptTimer: null,
    revealQueued: false,
  };

  // A string of the table with {name} placeholders filled in.
  function say(key, vars) {
    return (T[key] || "").replace(/\{(\w+)\}/g, (_, name) =>
      vars && vars[name] !== undefined ? String(vars[name]) : "",
    );
  }

  function formatCount(n) {
    return Number(n).toLocaleString(lang);
  }

  function deriveHubBase(src) {
    // The widget lives at HUB/static/widget.js; everything else hangs off HUB.
    const url = new URL(src, document.baseURI);
    const path = url.pathname.replace(/\/static\/widget\.js$/, "");
    return url.origin + (path === url.pathname ? "" : path);
  }

  function pickLanguage(attr) {
    const wanted = attr || navigator.language || "en";
    return /^zh/i.test(wanted) ? "zh-CN" : "en";
  }

  function safeStorage() {
    // localStorage throws in sandboxed iframes and some private modes; a chat that
    // forgets on reload is better than no chat at all.
    const memory = new Map();
    const ls = (() => {
      try {
        const probe = "omnihub.probe";
        window.localStorage.setItem(probe, "1");
        window.localStorage.removeItem(probe);
        return window.localStorage;
      } catch (_) {
        return null;
      }
    })();
    return {
      get: (k) => (ls ? ls.getItem(k) : memory.has(k) ? memory.get(k) : null),
      set: (k, v) => (ls ? ls.setItem(k, v) : memory.set(k, v)),
      remove: (k) => (ls ? ls.removeItem(k) : memory.delete(k)),
    };
  }

  function loadUnacked() {
    try {
      const list = JSON.parse(store.get(UNACKED_KEY) || "[]");
      return Array.isArray(list) ? list.filter((m) => m && m.client_id && m.text) : [];
    } catch (_) {
      return [];
    }
  }

  function saveUnacked() {
    if (state.unacked.length) store.set(UNACKED_KEY, JSON.stringify(state.unacked));
    else store.remove(UNACKED_KEY);
  }

  function newClientId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // randomUUID needs a secure context; plain-http intranet hubs still need unique ids.
    const rnd = Math.random().toString(36).slice(2, 12);
    return "c-" + Date.now().toString(36) + "-" + rnd;
  }

  /* ---------- DOM ---------- */

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  const CSS = `
.omnihub-root, .omnihub-root * { box-sizing: border-box; }
.omnihub-root { position: fixed; right: 16px; bottom: 16px; z-index: 2147483000;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "PingFang SC",
  "Microsoft YaHei", sans-serif; color: #1b1b1f; text-align: left; }
.omnihub-sr { position: absolute !important; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
.omnihub-root button { font: inherit; cursor: pointer; }
.omnihub-root :focus-visible { outline: 3px solid #1a4fd6; outline-offset: 2px; }
.omnihub-launcher { display: flex; align-items: center; gap: 8px; margin-left: auto;
  padding: 12px 18px; border: 2px solid #0b3d91; border-radius: 999px; background: #0b3d91;
  color: #ffffff; font-weight: 600; box-shadow: 0 4px 14px rgba(0,0,0,.25); }
.omnihub-launcher:hover { background: #08306f; }
.omnihub-launcher:focus-visible { outline-color: #0b3d91; box-shadow: 0 0 0 3px #ffffff; }
.omnihub-dot { width: 10px; height: 10px; border-radius: 50%; background: #ffd166; }
.omnihub-panel { position: absolute; right: 0; bottom: 64px; width: min(380px, calc(100vw - 32px));
  height: min(560px, calc(100vh - 96px)); display: flex; flex-direction: column;
  background: #ffffff; border: 1px solid #8a8f98; border-radius: 12px; overflow: hidden;
  box-shadow: 0 10px 32px rgba(0,0,0,.28); transition: opacity .15s ease, transform .15s ease; }
.omnihub-panel[hidden] { display: none; }
.omnihub-header { display: flex; align-items: center; justify-content: space-between;
  padding: 10px 12px 10px 16px; background: #0b3d91; color: #ffffff; }
.omnihub-title { margin: 0; font-size: 16px; font-weight: 700; color: #ffffff; }
.omnihub-close { border: 0; background: transparent; color: #ffffff; font-size: 22px;
  line-height: 1; padding: 4px 10px; border-radius: 6px; }
.omnihub-close:focus-visible { outline-color: #ffffff; }
.omnihub-alt { margin: 0; padding: 6px 16px; background: #ffffff; border-bottom: 1px solid #d5d8de;
  font-size: 14px; }
.omnihub-alt button { border: 0; background: transparent; padding: 2px 0; color: #0b3d91;
  text-decoration: underline; }
.omnihub-alt a { color: #0b3d91; font-weight: 600; }
.omnihub-alt[hidden] { display: none; }
.omnihub-status { margin: 0; padding: 6px 16px; background: #fff4ce; color: #3d3000; font-size: 13px; }
/* Kept rendered when empty: a live region that appears together with its text is often not read. */
.omnihub-status:empty { padding: 0; }
.omnihub-logwrap { position: relative; flex: 1; min-height: 0; display: flex; }
.omnihub-log { flex: 1; min-height: 0; overflow-y: auto; padding: 12px; background: #f5f6f8;
  display: flex; flex-direction: column; gap: 8px; }
.omnihub-log > * { flex-shrink: 0; }
.omnihub-pill { position: absolute; left: 50%; bottom: 10px; transform: translateX(-50%);
  padding: 6px 14px; border: 2px solid #0b3d91; border-radius: 999px; background: #0b3d91;
  color: #ffffff; font-size: 14px; font-weight: 600; box-shadow: 0 2px 8px rgba(0,0,0,.25); }
.omnihub-pill[hidden] { display: none; }
.omnihub-pill:focus-visible { outline-color: #0b3d91; box-shadow: 0 0 0 3px #ffffff; }
.omnihub-welcome { margin: 0; padding: 10px 12px; color: #33363d; background: #ffffff;
  border-radius: 10px; align-self: flex-start; max-width: 85%; }
.omnihub-msg { max-width: 85%; padding: 8px 12px; border-radius: 12px; background: #ffffff;
  color: #1b1b1f; border: 1px solid #d5d8de; align-self: flex-start; }
.omnihub-msg[data-author="customer"] { align-self: flex-end; background: #dbe7ff;
  border-color: #b6ccf7; }
.omnihub-msg[data-author="system"] { align-self: center; background: #eceef2; font-size: 13px; }
.omnihub-msg[data-state="failed"] { border-color: #b3261e; }
.omnihub-meta { display: flex; gap: 8px; font-size: 12px; color: #4a4f57; margin-bottom: 2px; }
.omnihub-author { font-weight: 600; color: #2b2f36; }
.omnihub-text { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.omnihub-html { white-space: normal; }
.omnihub-html > :first-child { margin-top: 0; }
.omnihub-html > :last-child { margin-bottom: 0; }
.omnihub-html p, .omnihub-html ul, .omnihub-html ol, .omnihub-html pre,
.omnihub-html table { margin: 0 0 8px; }
.omnihub-html ul, .omnihub-html ol { padding-left: 20px; }
.omnihub-html a { color: #0b3d91; text-decoration: underline; }
.omnihub-html code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px;
  background: #eceef2; border-radius: 4px; padding: 0 3px; }
.omnihub-html pre { white-space: pre-wrap; background: #eceef2; padding: 6px 8px; border-radius: 6px; }
.omnihub-html table { display: block; overflow-x: auto; border-collapse: collapse; font-size: 14px; }
.omnihub-html th, .omnihub-html td { border: 1px solid #c4c8cf; padding: 3px 6px; text-align: left;
  vertical-align: top; }
.omnihub-html th { background: #eceef2; }
.omnihub-files { list-style: none; margin: 6px 0 0; padding: 0; display: flex;
  flex-direction: column; gap: 4px; }
.omnihub-file-icon { vertical-align: -2px; margin-right: 4px; color: #4a4f57; }
.omnihub-file { color: #0b3d91; text-decoration: underline; overflow-wrap: anywhere; }
.omnihub-file-size { color: #4a4f57; font-size: 13px; }
.omnihub-choices { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 8px; }
.omnihub-choice { font: inherit; font-size: 13px; padding: 4px 10px; border-radius: 14px;
  border: 1px solid #3056d3; background: #ffffff; color: #3056d3; cursor: pointer; }
.omnihub-choice:disabled { opacity: 0.5; cursor: default; }
.omnihub-error { align-self: stretch; margin: 0; padding: 8px 12px; border-radius: 8px;
  background: #fde7e9; color: #8c1d18; border: 1px solid #f2b8bd; font-size: 14px; }
.omnihub-typing { margin: 0; padding: 4px 16px; font-size: 13px; color: #4a4f57;
  background: #f5f6f8; font-style: italic; }
.omnihub-typing[hidden] { display: none; }
.omnihub-form { display: flex; gap: 8px; align-items: flex-end; padding: 10px 12px;
  border-top: 1px solid #d5d8de; background: #ffffff; }
.omnihub-input { flex: 1; resize: none; min-height: 44px; max-height: 140px; padding: 10px;
  border: 1px solid #767b85; border-radius: 8px; font: inherit; color: #1b1b1f;
  background: #ffffff; }
.omnihub-input::placeholder { color: #5f646d; }
.omnihub-attach { display: flex; align-items: center; justify-content: center; min-width: 44px;
  min-height: 44px; border: 1px solid #767b85; border-radius: 8px; background: #ffffff;
  color: #33363d; }
.omnihub-attach:hover { background: #eceef2; }
.omnihub-attach .omnihub-file-icon { margin: 0; vertical-align: 0; }
.omnihub-send { padding: 10px 16px; border: 2px solid #0b3d91; border-radius: 8px;
  background: #0b3d91; color: #ffffff; font-weight: 600; }
.omnihub-send:hover { background: #08306f; }
.omnihub-foot { display: flex; flex-wrap: wrap; justify-content: space-between; gap: 2px 8px;
  margin: 0; padding: 0 12px 8px; font-size: 12px; color: #4a4f57; background: #ffffff; }
.omnihub-hint { margin: 0; }
.omnihub-counter { margin: 0 0 0 auto; font-variant-numeric: tabular-nums; }
.omnihub-counter[hidden] { display: none; }
.omnihub-counter[data-over] { color: #b3261e; font-weight: 600; }
@media (max-width: 480px) {
  .omnihub-panel { position: fixed; inset: 0; width: 100vw; height: 100vh; border-radius: 0; }
}
@media (prefers-reduced-motion: reduce) {
  .omnihub-panel { transition: none; }
  .omnihub-log { scroll-behavior: auto; }
}
`;

  /* ---------- calls: "Call us" over WebRTC (docs/phone.md, Web calls) ---------- */
  // Kept together here: the call bar, its state and its signalling. The rest of the widget
  // only places `callUi.bar` in the panel and calls `checkCalls()` once a session exists.

  const CALL_CSS = `
.omnihub-call { padding: 8px 16px; background: #ffffff; border-bottom: 1px solid #d5d8de; }
.omnihub-call[hidden], .omnihub-call [hidden] { display: none; }
.omnihub-call-start, .omnihub-call-end, .omnihub-call-mute { padding: 6px 14px; border-radius: 999px;
  font-weight: 600; }
.omnihub-call-start { border: 2px solid #0b3d91; background: #ffffff; color: #0b3d91; }
.omnihub-call-start:hover { background: #eceef2; }
.omnihub-call-end { border: 2px solid #a4161a; background: #a4161a; color: #ffffff; }
.omnihub-call-mute { border: 2px solid #4a4f57; background: #ffffff; color: #1b1b1f; }
.omnihub-call-mute[aria-pressed="true"] { background: #1b1b1f; color: #ffffff; }
.omnihub-call-row { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; }
.omnihub-call-state { margin: 0; font-weight: 600; color: #1b1b1f; }
.omnihub-call-timer { font-variant-numeric: tabular-nums; color: #33363d; }
.omnihub-keypad { display: grid; grid-template-columns: repeat(3, 48px); gap: 6px; margin-top: 8px; }
.omnihub-key { min-height: 40px; border: 1px solid #767b85; border-radius: 8px; background: #f5f6f8;
  color: #1b1b1f; font-size: 17px; font-weight: 600; }
.omnihub-key:hover { background: #dbe7ff; }
`;
  const CALL_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

  const call = {
    enabled: false,
    iceServers: [],
    phase: "idle", // idle | connecting | active | ended
    pc: null,
    mic: null, // the microphone's MediaStream
    channel: null, // the "call" data channel: keys out, the hub's hang-up in
    id: null,
    startedAt: 0,
    timer: null,
  };

  const callUi = buildCallUi();

  function buildCallUi() {
    document.head.append(el("style", { "data-omnihub": "call", text: CALL_CSS }));
    const button = (name, testid, text, attrs) =>
      el("button", { type: "button", class: name, "data-testid": testid, text, ...attrs });
    const start = button("omnihub-call-start", "omnihub-call", T.call);
    const stateText = el("p", {
      class: "omnihub-call-state",
      role: "status",
      "data-testid": "omnihub-call-state",
    });
    // Not a live region: a clock read out every second would drown the call.
    const timer = el("span", { class: "omnihub-call-timer", "data-testid": "omnihub-call-timer" });
    const mute = button("omnihub-call-mute", "omnihub-call-mute", T.callMute, { "aria-pressed": "false" });
    const end = button("omnihub-call-end", "omnihub-call-hangup", T.callHangUp);
    const keypad = el("div", {
      class: "omnihub-keypad",
      role: "group",
      "aria-label": T.callKeypad,
      "data-testid": "omnihub-keypad",
    });
    for (const key of CALL_KEYS) {
      const named = key === "*" ? T.callKeyStar : key === "#" ? T.callKeyPound : null;
      const press = button("omnihub-key", null, key, {
        "data-key": key,
        "aria-label": named ? `${named} (${key})` : null,
      });
      press.addEventListener("click", () => sendKey(key));
      keypad.append(press);
    }
    const controls = el("div", { class: "omnihub-call-row" }, timer, mute, end);
    const live = el("div", { hidden: true }, controls, keypad);
    const audio = el("audio", { autoplay: true, "data-testid": "omnihub-call-audio" });
    const bar = el(
      "section",
      { class: "omnihub-call", "aria-label": T.callRegion, hidden: true, "data-testid": "omnihub-call-bar" },
      el("div", { class: "omnihub-call-row" }, start, stateText),
      live,
      audio,
    );
    start.addEventListener("click", startCall);
    end.addEventListener("click", hangUpCall);
    mute.addEventListener("click", toggleMute);
    // Digits typed on the keyboard anywhere in the call bar press the keypad.
    bar.addEventListener("keydown", (e) => {
      if (call.phase === "active" && CALL_KEYS.includes(e.key) && !e.ctrlKey && !e.metaKey && !e.altKey) {
        e.preventDefault();
        sendKey(e.key);
      }
    });
    window.addEventListener("pagehide", () => {
      // The hub would notice the silence anyway; saying so frees the line at once.
      if (call.id && state.token) {
        const url = `${hubBase}/api/webchat/calls/${encodeURIComponent(call.id)}?token=${encodeURIComponent(state.token)}`;
        fetch(url, { method: "DELETE", keepalive: true, credentials: "omit" }).catch(() => {});
      }
      closeCallMedia();
    });
    return { bar, start, stateText, timer, mute, end, keypad, live, audio };
  }

  async function checkCalls() {
    const capable = !!(window.RTCPeerConnection && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
    if (!capable || !state.token) return;
    let res = null;
    try {
      res = await request("GET", "/api/webchat/calls?token=" + encodeURIComponent(state.token));
    } catch (_) {
      res = null;
    }
    call.enabled = !!(res && res.ok && res.data && res.data.enabled);
    call.iceServers = call.enabled && Array.isArray(res.data.ice_servers) ? res.data.ice_servers : [];
    callUi.bar.hidden = !call.enabled;
  }

  function setCallPhase(phase, message) {
    call.phase = phase;
    callUi.bar.dataset.phase = phase;
    const inCall = phase === "connecting" || phase === "active";
    callUi.start.hidden = inCall;
    callUi.live.hidden = !inCall; // hang up while connecting too
    for (const part of [callUi.timer, callUi.mute, callUi.keypad]) part.hidden = phase !== "active";
    const text = { connecting: T.callConnecting, active: T.callActive, ended: message || T.callEnded };
    callUi.stateText.textContent = text[phase] || "";
    clearInterval(call.timer);
    callUi.timer.textContent = "";
    if (phase === "active") {
      call.startedAt = Date.now();
      tickCallTimer();
      call.timer = setInterval(tickCallTimer, 1000);
    }
  }

  function tickCallTimer() {
    const s = Math.floor((Date.now() - call.startedAt) / 1000);
    callUi.timer.textContent = `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  }

  async function startCall() {
    if (call.phase === "connecting" || call.phase === "active") return;
    setCallPhase("connecting");
    try {
      call.mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      const denied = err && (err.name === "NotAllowedError" || err.name === "SecurityError");
      const missing = err && (err.name === "NotFoundError" || err.name === "OverconstrainedError");
      setCallPhase("idle");
      showNotice(denied ? T.callMicDenied : missing ? T.callMicMissing : T.callFailed);
      callUi.start.focus();
      return;
    }
    let failure = T.callFailed;
    try {
      const pc = new RTCPeerConnection({ iceServers: call.iceServers });
      call.pc = pc;
      for (const track of call.mic.getAudioTracks()) pc.addTrack(track, call.mic);
      const channel = pc.createDataChannel("call");
      call.channel = channel;
      channel.addEventListener("message", onCallMessage);
      // The hub closing the peer connection closes the channel too: the call is over.
      channel.addEventListener("close", () => call.channel === channel && endCall(T.callEnded));
      pc.addEventListener("track", (e) => {
        callUi.audio.srcObject = e.streams[0] || new MediaStream([e.track]);
      });
      pc.addEventListener("connectionstatechange", () => {
        if (call.pc !== pc) return;
        if (pc.connectionState === "connected" && call.phase === "connecting") {
          setCallPhase("active");
          callUi.end.focus();
        } else if (pc.connectionState === "failed") {
          endCall(call.phase === "active" ? T.callDropped : T.callFailed);
        }
      });
      await pc.setLocalDescription(await pc.createOffer());
      await iceGathered(pc); // the hub takes one complete offer (no trickle ICE)
      if (call.pc !== pc) return; // hung up meanwhile
      const res = await request("POST", "/api/webchat/calls", {
        token: state.token,
        sdp: pc.localDescription.sdp,
        language: lang,
      });
      if (!res.ok || !res.data || !res.data.sdp) {
        const code = res.data && res.data.error ? res.data.error.code : "";
        if (code === "call_in_progress") failure = T.callElsewhere;
        else if (res.status === 429) failure = T.callBusy;
        throw new Error("call " + res.status);
      }
      if (call.pc !== pc) {
        dropCall(res.data.call_id);
        return;
      }
      call.id = res.data.call_id;
      await pc.setRemoteDescription({ type: "answer", sdp: res.data.sdp });
    } catch (_) {
      if (call.phase === "connecting") {
        endCall(null);
        showNotice(failure);
      }
    }
  }

  function iceGathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (pc.iceGatheringState !== "complete") return;
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      };
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  function onCallMessage(event) {
    let message = null;
    try {
      message = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    if (message && message.type === "hangup") endCall(T.callEnded);
  }

  function sendKey(key) {
    if (call.phase !== "active" || !call.channel || call.channel.readyState !== "open") return;
    call.channel.send(JSON.stringify({ type: "dtmf", digit: key }));
  }

  function toggleMute() {
    if (!call.mic) return;
    const muted = callUi.mute.getAttribute("aria-pressed") !== "true";
    for (const track of call.mic.getAudioTracks()) track.enabled = !muted;
    callUi.mute.setAttribute("aria-pressed", String(muted));
  }

  function hangUpCall() {
    if (call.id) dropCall(call.id);
    endCall(T.callEnded);
  }

  function dropCall(id) {
    request(
      "DELETE",
      `/api/webchat/calls/${encodeURIComponent(id)}?token=${encodeURIComponent(state.token)}`,
    ).catch(() => {});
  }

  // The call is over, whoever ended it: release the microphone and the connection.
  function endCall(message) {
    if (call.phase === "idle" || call.phase === "ended") return;
    const hadFocus = callUi.bar.contains(document.activeElement);
    closeCallMedia();
    setCallPhase(message ? "ended" : "idle", message);
    if (hadFocus) callUi.start.focus();
  }

  function closeCallMedia() {
    const { pc, mic } = call;
    call.pc = null;
    call.channel = null;
    call.mic = null;
    call.id = null;
    if (pc) pc.close();
    if (mic) for (const track of mic.getTracks()) track.stop();
    callUi.audio.srcObject = null;
    callUi.mute.setAttribute("aria-pressed", "false");
  }

  const ui = buildUi();

  function buildUi() {
    document.head.append(el("style", { "data-omnihub": "widget", text: CSS }));

    const panelId = "omnihub-panel-" + Math.random().toString(36).slice(2, 8);
    const titleId = panelId + "-title";
    const inputId = panelId + "-input";
    const hintId = panelId + "-hint";
    const counterId = panelId + "-counter";

    const dot = el("span", { class: "omnihub-dot", "aria-hidden": "true", hidden: true });
    const unreadText = el("span", { class: "omnihub-sr" });
    const launcher = el(
      "button",
      {
        type: "button",
        class: "omnihub-launcher",
        "data-testid": "omnihub-launcher",
        "aria-expanded": "false",
        "aria-controls": panelId,
      },
      el("span", { text: T.launcher }),
      unreadText,
      dot,
    );

    const close = el("button", {
      type: "button",
      class: "omnihub-close",
      "aria-label": T.close,
      title: T.close,
      text: "×",
    });
    const header = el(
      "div",
      { class: "omnihub-header" },
      el("h2", { class: "omnihub-title", id: titleId, text: title }),
      close,
    );
    const status = el("p", { class: "omnihub-status", role: "status" });
    // Continue on Telegram as the same contact (docs/telegram.md): the link is made on demand,
    // for this visitor's session, and shown as a link to follow (no pop-up to be blocked).
    const telegramOn = /^(on|true|1)$/i.test(script.getAttribute("data-telegram") || "");
    const alt = el("p", { class: "omnihub-alt", hidden: !telegramOn });
    const telegram = el("button", {
      type: "button",
      "data-testid": "omnihub-telegram",
      text: T.telegram,
    });
    alt.append(telegram);
    telegram.addEventListener("click", () => continueOnTelegram(alt));
    const log = el(
      "div",
      {
        class: "omnihub-log",
        role: "log",
        "aria-live": "polite",
        "aria-label": T.log,
        "data-testid": "omnihub-log",
        tabindex: "0",
      },
      el("p", { class: "omnihub-welcome", text: T.welcome }),
    );
    // Shown when replies arrive while the customer is scrolled up reading older ones.
    const pill = el("button", {
      type: "button",
      class: "omnihub-pill",
      "data-testid": "omnihub-new-messages",
      hidden: true,
      text: T.newMessages,
    });
    const logWrap = el("div", { class: "omnihub-logwrap" }, log, pill);
    const typing = el("p", { class: "omnihub-typing", hidden: true, "aria-live": "polite" });
    const input = el("textarea", {
      id: inputId,
      class: "omnihub-input",
      rows: "1",
      placeholder: T.placeholder,
      "aria-describedby": hintId + " " + counterId,
      "data-testid": "omnihub-input",
    });
    const fileInput = el("input", {
      type: "file",
      multiple: true,
      class: "omnihub-sr",
      tabindex: "-1",
      "aria-hidden": "true",
      "data-testid": "omnihub-file-input",
    });
    const attach = el("button", {
      type: "button",
      class: "omnihub-attach",
      "aria-label": T.attach,
      title: T.attach,
      "data-testid": "omnihub-attach",
    });
    attach.append(fileIcon(20));
    const send = el("button", {
      type: "submit",
      class: "omnihub-send",
      "data-testid": "omnihub-send",
      text: T.send,
    });
    const form = el(
      "form",
      { class: "omnihub-form" },
      el("label", { for: inputId, class: "omnihub-sr", text: T.inputLabel }),
      input,
      attach,
      fileInput,
      send,
    );
    const counter = el("p", {
      class: "omnihub-counter",
      id: counterId,
      "data-testid": "omnihub-counter",
      hidden: true,
    });
    const foot = el(
      "div",
      { class: "omnihub-foot" },
      el("p", { class: "omnihub-hint", id: hintId, text: T.hint }),
      counter,
    );
    const panel = el(
      "div",
      {
        id: panelId,
        class: "omnihub-panel",
        role: "dialog",
        "aria-modal": "false",
        "aria-labelledby": titleId,
        "data-testid": "omnihub-panel",
        hidden: true,
      },
      header,
      alt,
      callUi.bar,
      status,
      logWrap,
      typing,
      form,
      foot,
    );
    const root = el("div", { class: "omnihub-root", lang }, panel, launcher);
    document.body.append(root);

    launcher.addEventListener("click", () => (panel.hidden ? openPanel() : closePanel()));
    close.addEventListener("click", closePanel);
    panel.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        closePanel();
      }
    });
    // Focus should never be on the page body while the chat is open; if the page puts it
    // there anyway, Escape still closes the chat.
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !panel.hidden && document.activeElement === document.body) {
        e.preventDefault();
        closePanel();
      }
    });
    log.addEventListener("scroll", onLogScroll, { passive: true });
    pill.addEventListener("click", jumpToNew);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      submitInput();
    });
    input.addEventListener("keydown", onInputKeydown);
    input.addEventListener("input", onInputChange);
    attach.addEventListener("click", () => fileInput.click());
    fileInput.addEventListener("change", () => {
      sendFiles(fileInput.files);
      fileInput.value = ""; // choosing the same file again is a new message
    });

    return { root, launcher, dot, unreadText, panel, status, log, pill, typing, input, counter };
  }

  /* ---------- panel ---------- */

  function openPanel() {
    ui.panel.hidden = false;
    ui.launcher.setAttribute("aria-expanded", "true");
    setUnread(false);
    ui.input.focus();
    state.pinned = true;
    clearUnseen();
    revealLatest();
    scheduleReceipts();
    if (!state.started) start();
  }

  function closePanel() {
    if (ui.panel.hidden) return;
    ui.panel.hidden = true;
    ui.launcher.setAttribute("aria-expanded", "false");
    ui.launcher.focus();
  }

  function setUnread(on) {
    ui.dot.hidden = !on;
    ui.unreadText.textContent = on ? ", " + T.unread : "";
  }

  function setStatus(text) {
    ui.status.textContent = text || "";
  }

  /* ---------- scrolling ---------- */

  // New messages come into view (the latest fully, or its top when it is taller than the
  // log) unless the customer scrolled up to read: then a pill offers to jump down.
  const NEAR_END_PX = 40;

  function atEnd() {
    const log = ui.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < NEAR_END_PX;
  }

  function onLogScroll() {
    if (Math.abs(ui.log.scrollTop - state.autoScrollTop) < 2) return; // our own scroll
    state.autoScrollTop = -1;
    state.pinned = atEnd();
    if (state.pinned) clearUnseen();
  }

  function scrollLogTo(top) {
    const log = ui.log;
    const max = Math.max(0, log.scrollHeight - log.clientHeight);
    log.scrollTop = Math.max(0, Math.min(max, top));
    state.autoScrollTop = log.scrollTop;
  }

  // Scroll so `node` is fully in view, or its top at the top when it is taller than the log.
  function showNode(node) {
    const log = ui.log;
    const top = node.getBoundingClientRect().top - log.getBoundingClientRect().top;
    const padding = parseFloat(getComputedStyle(log).paddingTop) || 0;
    scrollLogTo(Math.min(log.scrollHeight, log.scrollTop + top - padding));
  }

  function lastEntry() {
    const entries = ui.log.querySelectorAll(".omnihub-msg, .omnihub-error");
    return entries.length ? entries[entries.length - 1] : null;
  }

  function revealLatest() {
    if (ui.panel.hidden) return;
    const last = lastEntry();
    if (last) showNode(last);
  }

  // `own`: the customer's own message or a notice for them, always brought into view.
  function follow(node, own) {
    if (own) {
      state.pinned = true;
      clearUnseen();
    }
    if (ui.panel.hidden) return; // opening the panel shows the latest
    if (state.pinned) {
      // Once, after whatever else this task adds (a whole history, quick replies): one layout.
      if (!state.revealQueued) {
        state.revealQueued = true;
        queueMicrotask(() => {
          state.revealQueued = false;
          if (state.pinned) revealLatest();
        });
      }
      return;
    }
    if (!state.unseen.includes(node)) state.unseen.push(node);
    ui.pill.hidden = false;
  }

  function clearUnseen() {
    if (state.unseen.length) scheduleReceipts(); // what was unseen is in view now
    state.unseen = [];
    if (ui.pill.hidden) return;
    const hadFocus = document.activeElement === ui.pill;
    ui.pill.hidden = true;
    if (hadFocus) ui.log.focus(); // never let focus fall to the page body
  }

  function jumpToNew() {
    const first = state.unseen.find((n) => n.isConnected);
    state.pinned = true;
    if (first) showNode(first);
    if (atEnd() || !first) revealLatest();
    ui.log.focus();
    clearUnseen();
  }

  /* ---------- messages ---------- */

  function authorLabel(author, authorName) {
    const role = T[author] || T.system;
    return authorName && author !== "customer" ? `${authorName} (${role})` : role;
  }

  function formatTime(iso) {
    const date = iso ? new Date(iso) : new Date();
    if (Number.isNaN(date.getTime())) return "";
    return date.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
  }

  function formatSize(bytes) {
    const units = ["B", "KB", "MB", "GB"];
    let value = Number(bytes) || 0;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    const digits = unit === 0 || value >= 10 ? 0 : 1;
    return value.toLocaleString(lang, { maximumFractionDigits: digits }) + " " + units[unit];
  }

  // A paperclip drawn inline: emoji fonts are missing on many systems.
  function fileIcon(size) {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    for (const [k, v] of Object.entries({
      class: "omnihub-file-icon",
      viewBox: "0 0 24 24",
      width: String(size || 14),
      height: String(size || 14),
      "aria-hidden": "true",
      focusable: "false",
    }))
      svg.setAttribute(k, v);
    const path = document.createElementNS(NS, "path");
    path.setAttribute(
      "d",
      "M21 11.5l-8.6 8.6a5.5 5.5 0 0 1-7.8-7.8l9.2-9.2a3.7 3.7 0 0 1 5.2 5.2l-9.2 9.2a1.8 1.8 0 0 1-2.6-2.6l8.5-8.5",
    );
    for (const [k, v] of Object.entries({
      fill: "none",
      stroke: "currentColor",
      "stroke-width": "2",
      "stroke-linecap": "round",
    }))
      path.setAttribute(k, v);
    svg.append(path);
    return svg;
  }

  // Files sent to the customer (docs/webchat-protocol.md): links that carry the session token,
  // which the hub checks before serving a file of this conversation.
  function renderFiles(files) {
    const list = el("ul", { class: "omnihub-files", "aria-label": T.files });
    for (const file of files) {
      if (!file || typeof file.filename !== "string") continue;
      // A file still on its way has no url yet: its name is shown without a link.
      const name =
        typeof file.url === "string"
          ? el("a", {
              class: "omnihub-file",
              href: hubBase + file.url + "?token=" + encodeURIComponent(state.token || ""),
              target: "_blank",
              rel: "noopener noreferrer",
              "data-testid": "omnihub-file",
              text: file.filename,
            })
          : el("span", { text: file.filename });
      list.append(
        el(
          "li",
          null,
          fileIcon(),
          name,
          el("span", { class: "omnihub-file-size", text: " (" + formatSize(file.size) + ")" }),
        ),
      );
    }
    return list.childElementCount ? list : null;
  }

  // The message's words: the hub's sanitised HTML for bot and agent messages (docs/api.md,
  // `html`), else the plain text with its line breaks.
  function messageBody(text, html) {
    if (typeof html === "string" && html) {
      const body = el("div", { class: "omnihub-text omnihub-html" });
      body.innerHTML = html; // sanitised by the hub, never built from customer input here
      return body;
    }
    return el("p", { class: "omnihub-text", text });
  }

  function renderMessage({
    author,
    text,
    html,
    createdAt,
    authorName,
    messageId,
    clientId,
    state: st,
    files,
  }) {
    const label = authorLabel(author, authorName);
    const stateEl = el("span", { class: "omnihub-state", "aria-hidden": "true" });
    const node = el(
      "div",
      {
        class: "omnihub-msg",
        role: "article",
        "aria-label": label,
        "data-testid": "omnihub-message",
        "data-author": author,
      },
      el(
        "div",
        { class: "omnihub-meta" },
        el("span", { class: "omnihub-author", text: label }),
        el("time", { datetime: createdAt || "", text: formatTime(createdAt) }),
        author === "customer" ? stateEl : null,
      ),
      text || !files || !files.length ? messageBody(text, author === "customer" ? null : html) : null,
      Array.isArray(files) && files.length ? renderFiles(files) : null,
    );
    if (messageId != null) node.dataset.messageId = String(messageId);
    if (clientId) state.byClientId.set(clientId, node);
    if (author === "customer") setMessageState(node, st || "sent");
    if (messageId != null) state.byMessageId.set(messageId, node);
    if (author !== "customer" && messageId > state.newestIncoming) {
      state.newestIncoming = messageId;
      scheduleReceipts();
    }
    insertInOrder(node);
    return node;
  }

  function setFiles(node, files) {
    const old = node.querySelector(".omnihub-files");
    const list = Array.isArray(files) && files.length ? renderFiles(files) : null;
    if (old && list) old.replaceWith(list);
    else if (list) node.append(list);
  }

  function setMessageState(node, st) {
    if (node.dataset.state === "read" && st === "sent") return; // seen stays seen
    node.dataset.state = st;
    const stateEl = node.querySelector(".omnihub-state");
    if (stateEl) stateEl.textContent = T[st] || "";
  }

  function insertInOrder(node) {
    // Stored messages are ordered by message_id; pending ones (no id yet) stay last.
    const id = node.dataset.messageId ? Number(node.dataset.messageId) : null;
    const siblings = ui.log.querySelectorAll(".omnihub-msg, .omnihub-error");
    let before = null;
    if (id !== null) {
      for (const other of siblings) {
        const otherId = other.dataset.messageId;
        if (other.classList.contains("omnihub-error")) continue;
        if (!otherId || Number(otherId) > id) {
          before = other;
          break;
        }
      }
    }
    if (before) ui.log.insertBefore(node, before);
    else ui.log.append(node);
    follow(node, node.dataset.author === "customer" && id === null);
  }

  function markSent(clientId, messageId) {
    const node = state.byClientId.get(clientId);
    state.unacked = state.unacked.filter((m) => m.client_id !== clientId);
    saveUnacked();
    if (state.unacked.length) armAckWatchdog();
    else clearTimeout(state.ackWatchdog);
    if (!node) return;
    state.byClientId.delete(clientId);
    if (messageId != null) {
      node.dataset.messageId = String(messageId);
      state.byMessageId.set(messageId, node);
    }
    setMessageState(node, "sent");
  }

  function showError(code) {
    showNotice(T["err_" + code] || T.err_generic);
  }

  function showNotice(text) {
    const node = el("p", { class: "omnihub-error", "data-testid": "omnihub-error", text });
    ui.log.append(node);
    follow(node, true);
  }

  function mergeHistory(messages) {
    for (const m of messages) {
      const known = state.byMessageId.get(m.message_id);
      if (known) {
        if (m.author === "customer" && m.delivery_state === "read") setMessageState(known, "read");
        continue;
      }
      if (m.client_id && state.byClientId.has(m.client_id)) {
        const node = state.byClientId.get(m.client_id);
        markSent(m.client_id, m.message_id);
        if (m.delivery_state === "read") setMessageState(node, "read");
        setFiles(node, m.attachments);
        continue;
      }
      if (m.client_id) {
        // Stored while we were away (or by another tab): no longer needs a resend.
        state.unacked = state.unacked.filter((u) => u.client_id !== m.client_id);
      }
      renderMessage({
        author: m.author,
        text: m.text,
        html: m.html,
        createdAt: m.created_at,
        authorName: m.author_name,
        messageId: m.message_id,
        state: m.delivery_state === "read" ? "read" : "sent",
        files: m.attachments,
      });
    }
    saveUnacked();
  }

  /* ---------- sending ---------- */

  function onInputKeydown(e) {
    // isComposing: Enter confirms a Chinese/Japanese IME candidate and must not send.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submitInput();
    }
  }

  function onInputChange() {
    const input = ui.input;
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 140) + "px";
    updateCounter();
    const now = Date.now();
    if (input.value.trim() && now - state.lastTypingSent >= TYPING_SEND_MS && socketOpen()) {
      state.lastTypingSent = now;
      state.ws.send(JSON.stringify({ type: "typing" }));
    }
  }

  // The hub counts characters (code points) of the trimmed text; so do we.
  function charCount(text) {
    let n = 0;
    for (const _ of text) n += 1;
    return n;
  }

  // The limit is shown as it nears (the last fifth), and how far over once it is passed.
  function updateCounter() {
    const max = state.maxText;
    const raw = ui.input.value;
    const counter = ui.counter;
    // UTF-16 length >= characters: most keystrokes need no counting at all.
    const count = max && raw.length >= max * 0.8 ? charCount(raw.trim()) : 0;
    if (!max || count < max * 0.8) {
      counter.hidden = true;
      counter.textContent = "";
      counter.removeAttribute("data-over");
      return;
    }
    const over = count > max;
    counter.hidden = false;
    counter.toggleAttribute("data-over", over);
    counter.textContent = over
      ? say("charsOver", { over: formatCount(count - max), max: formatCount(max) })
      : say("charsLeft", { left: formatCount(max - count), max: formatCount(max) });
  }

  function overLimitNotice() {
    if (!state.maxText) showError("text_too_long");
    else showNotice(say("err_text_over_limit", { max: formatCount(state.maxText) }));
  }

  function submitInput() {
    const text = ui.input.value.trim();
    if (!text) return;
    const tooLong =
      (state.maxText && text.length > state.maxText && charCount(text) > state.maxText) ||
      new TextEncoder().encode(text).length > MAX_FRAME_BYTES;
    if (tooLong) {
      // Refused here, before it is hit: the text stays in the box to be shortened.
      overLimitNotice();
      ui.input.focus();
      return;
    }
    ui.input.value = "";
    ui.input.style.height = "";
    updateCounter();
    sendText(text);
  }

  function sendText(text) {
    retireChoices(); // the customer moved on: earlier questions' buttons no longer apply
    state.lastTypingSent = 0; // the next message is news to the agent: announce it at once
    const item = { client_id: newClientId(), text, created_at: new Date().toISOString() };
    state.unacked.push(item);
    saveUnacked();
    renderMessage({
      author: "customer",
      text,
      createdAt: item.created_at,
      clientId: item.client_id,
      state: "sending",
    });
    if (socketOpen()) sendFrame(item);
    else if (!state.started) start();
  }

  // Files go over HTTP (docs/webchat-protocol.md, Files), one message per choice. They cannot
  // wait in localStorage like text, so a failure is shown at once for the visitor to retry.
  async function sendFiles(fileList) {
    const files = Array.from(fileList || []);
    if (!files.length) return;
    const clientId = newClientId();
    const node = renderMessage({
      author: "customer",
      text: "",
      createdAt: new Date().toISOString(),
      clientId,
      state: "sending",
      files: files.map((f) => ({ filename: f.name, size: f.size })),
    });
    const form = new FormData();
    for (const f of files) form.append("file", f, f.name);
    let res = null;
    try {
      if (!state.token) await ensureSession();
      if (!state.started) start();
      const query = "?token=" + encodeURIComponent(state.token) + "&client_id=" + encodeURIComponent(clientId);
      const r = await fetch(hubBase + "/api/webchat/messages" + query, {
        method: "POST",
        body: form,
        credentials: "omit",
      });
      res = { status: r.status, data: await r.json().catch(() => null) };
    } catch (_) {
      res = null;
    }
    if (res && res.status === 201 && res.data) {
      const id = res.data.message_id;
      markSent(clientId, id);
      setFiles(
        node,
        files.map((f, i) => ({
          filename: f.name,
          size: f.size,
          url: `/api/webchat/attachments/${id}/${i}`,
        })),
      );
      return;
    }
    state.byClientId.delete(clientId);
    setMessageState(node, "failed");
    const code = res && res.data && res.data.error ? res.data.error.code : "";
    const key = code === "rate_limited" ? "err_file_rate_limited" : "err_" + code;
    showNotice(T[key] || T.err_file_failed);
  }

  async function continueOnTelegram(box) {
    let res = null;
    try {
      await ensureSession();
      if (!state.started) start();
      res = await request("POST", "/api/webchat/telegram-link", { token: state.token });
    } catch (_) {
      res = null;
    }
    if (!res || !res.ok || !res.data || typeof res.data.url !== "string") {
      showError("telegram_failed");
      return;
    }
    const link = el("a", {
      href: res.data.url,
      target: "_blank",
      rel: "noopener noreferrer",
      "data-testid": "omnihub-telegram-link",
      text: T.telegramOpen,
    });
    box.replaceChildren(link);
    link.focus();
  }

  function sendFrame(item) {
    state.ws.send(JSON.stringify({ type: "message", client_id: item.client_id, text: item.text }));
    armAckWatchdog();
  }

  function armAckWatchdog() {
    clearTimeout(state.ackWatchdog);
    state.ackWatchdog = setTimeout(() => {
      if (state.unacked.length && socketOpen()) dropSocket();
    }, ACK_TIMEOUT_MS);
  }

  function renderPending() {
    for (const item of state.unacked) {
      if (state.byClientId.has(item.client_id)) continue;
      renderMessage({
        author: "customer",
        text: item.text,
        createdAt: item.created_at,
        clientId: item.client_id,
        state: "sending",
      });
    }
  }

  /* ---------- server frames ---------- */

  function onFrame(event) {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    if (frame.type === "ack") markSent(frame.client_id, frame.message_id);
    else if (frame.type === "message") onIncomingMessage(frame);
    else if (frame.type === "delivery") onDelivery(frame);
    else if (frame.type === "typing") showTyping();
    else if (frame.type === "error") onErrorFrame(frame);
  }

  function onIncomingMessage(frame) {
    if (state.byMessageId.has(frame.message_id)) return;
    hideTyping();
    retireChoices(); // only the newest message's quick replies apply (not after a hand-over)
    const node = renderMessage({
      author: frame.author || "system",
      text: frame.text || "",
      html: frame.html,
      createdAt: frame.created_at,
      authorName: frame.author_name,
      messageId: frame.message_id,
      files: frame.attachments,
    });
    if (Array.isArray(frame.choices) && frame.choices.length) renderChoices(node, frame.choices);
    if (ui.panel.hidden) setUnread(true);
  }

  // An agent saw the customer's message: "Seen".
  function onDelivery(frame) {
    const node = state.byMessageId.get(frame.message_id);
    if (node && node.dataset.author === "customer" && frame.state === "read") {
      setMessageState(node, "read");
    }
  }

  // Receipts (docs/webchat-protocol.md): the replies up to the newest one shown are
  // `delivered` to this browser, and `read` while the chat is open on a visible page. One
  // frame covers many messages, sent once the current burst of messages is drawn.
  function scheduleReceipts() {
    if (state.receiptTimer) return;
    state.receiptTimer = setTimeout(() => {
      state.receiptTimer = null;
      sendReceipts();
    }, 0);
  }

  function sendReceipts() {
    const newest = state.newestIncoming;
    if (!newest || !socketOpen()) return; // sent again when the socket opens
    const shown = !ui.panel.hidden && document.visibilityState === "visible";
    // Scrolled up with the pill showing: read up to just before the first unseen reply.
    const unseenIds = state.unseen.map((n) => Number(n.dataset.messageId)).filter((id) => id > 0);
    const read = !shown ? 0 : unseenIds.length ? Math.min(...unseenIds) - 1 : newest;
    if (read > state.receipted.read) {
      state.ws.send(JSON.stringify({ type: "read", up_to: read }));
      state.receipted.read = read;
      state.receipted.delivered = Math.max(state.receipted.delivered, read);
    }
    if (newest > state.receipted.delivered) {
      state.ws.send(JSON.stringify({ type: "delivered", up_to: newest }));
      state.receipted.delivered = newest;
    }
  }

  // Refusals that mean "not now": the message stays queued and is sent again.
  const RETRYABLE = new Set(["rate_limited", "storage_unavailable"]);

  // Quick replies from the bot (docs/webchat-protocol.md): a click sends the payload as the
  // customer's message; a question is answered once, so its buttons go when one is used.
  function renderChoices(node, choices) {
    const row = el("div", { class: "omnihub-choices", role: "group" });
    for (const choice of choices) {
      if (!choice || typeof choice.title !== "string") continue;
      const button = el("button", {
        type: "button",
        class: "omnihub-choice",
        "data-testid": "omnihub-choice",
        text: choice.title,
      });
      button.addEventListener("click", () => {
        // Into the input before the buttons are disabled: a disabled button drops focus to
        // the page body, where Escape and typing no longer reach the chat.
        ui.input.focus();
        sendText(typeof choice.payload === "string" ? choice.payload : choice.title);
      });
      row.append(button);
    }
    node.append(row);
    follow(node, false);
  }

  function retireChoices() {
    if (ui.log.contains(document.activeElement) && document.activeElement.matches("button")) {
      ui.input.focus();
    }
    for (const row of ui.log.querySelectorAll(".omnihub-choices:not([aria-disabled])")) {
      row.setAttribute("aria-disabled", "true");
      for (const b of row.querySelectorAll("button")) b.disabled = true;
    }
  }

  function onErrorFrame(frame) {
    const item = frame.client_id && state.unacked.find((m) => m.client_id === frame.client_id);
    if (item && RETRYABLE.has(frame.code)) {
      // Still wanted by the customer: keep it queued and retry shortly.
      showError(frame.code);
      setTimeout(() => socketOpen() && sendFrame(item), 3000);
      return;
    }
    if (item) {
      state.unacked = state.unacked.filter((m) => m !== item);
      saveUnacked();
      const node = state.byClientId.get(item.client_id);
      state.byClientId.delete(item.client_id);
      if (frame.code === "text_too_long" && !ui.input.value.trim()) {
        // Nothing is lost: the text goes back in the box, to be shortened and sent again.
        if (node) node.remove();
        ui.input.value = item.text;
        onInputChange();
        ui.input.focus();
        overLimitNotice();
        return;
      }
      if (node) setMessageState(node, "failed");
    }
    if (frame.code === "text_too_long") overLimitNotice();
    else showError(frame.code);
  }

  function showTyping() {
    ui.typing.textContent = T.typing;
    ui.typing.hidden = false;
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
  }

  function hideTyping() {
    clearTimeout(state.typingTimer);
    ui.typing.hidden = true;
  }

  /* ---------- session and connection ---------- */

  async function request(method, path, body) {
    const res = await fetch(hubBase + path, {
      method,
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
      credentials: "omit",
      cache: "no-store",
    });
    let data = null;
    try {
      data = await res.json();
    } catch (_) {
      data = null;
    }
    return { status: res.status, ok: res.ok, data };
  }

  // One session request at a time: the connection and a file upload may both need the session
  // before it exists, and two requests without a token would open two conversations.
  function ensureSession() {
    if (!state.sessionPending) {
      state.sessionPending = openSession().finally(() => {
        state.sessionPending = null;
      });
    }
    return state.sessionPending;
  }

  async function openSession() {
    const body = { language: lang };
    if (state.token) body.token = state.token;
    let res = await request("POST", "/api/webchat/sessions", body);
    if (res.status === 401 && body.token) {
      // The hub forgot this visitor (expired or wiped): start a fresh conversation.
      forgetSession();
      delete body.token;
      res = await request("POST", "/api/webchat/sessions", body);
    }
    if (!res.ok || !res.data || !res.data.token) throw new Error("session " + res.status);
    state.token = res.data.token;
    state.conversationId = res.data.conversation_id;
    if (Number.isInteger(res.data.max_text_chars) && res.data.max_text_chars > 0) {
      state.maxText = res.data.max_text_chars;
      updateCounter();
    }
    store.set(TOKEN_KEY, state.token);
    ui.panel.dataset.conversationId = String(state.conversationId);
    checkCalls(); // "Call us" when this hub answers web calls
  }

  function forgetSession() {
    state.token = null;
    store.remove(TOKEN_KEY);
  }

  async function syncHistory() {
    const res = await request("GET", "/api/webchat/history?token=" + encodeURIComponent(state.token));
    if (res.status === 401) {
      forgetSession();
      throw new Error("history 401");
    }
    if (!res.ok || !res.data) throw new Error("history " + res.status);
    mergeHistory(res.data.messages || []);
  }

  function socketOpen() {
    return state.ws && state.ws.readyState === WebSocket.OPEN;
  }

  function start() {
    state.started = true;
    renderPending();
    connect();
  }

  async function connect() {
    if (state.connecting || state.ws) return;
    state.connecting = true;
    clearTimeout(state.reconnectTimer);
    if (state.attempt === 0) setStatus(T.connecting);
    try {
      await ensureSession();
      await syncHistory();
      openSocket();
    } catch (_) {
      scheduleReconnect();
    } finally {
      state.connecting = false;
    }
  }

  function openSocket() {
    const wsBase = hubBase.replace(/^http/, "ws");
    const ws = new WebSocket(wsBase + "/api/webchat/ws?token=" + encodeURIComponent(state.token));
    state.ws = ws;
    ws.addEventListener("open", () => {
      state.attempt = 0;
      setStatus("");
      for (const item of state.unacked) sendFrame(item);
      state.receipted = { delivered: 0, read: 0 }; // a new socket: say it once more
      scheduleReceipts();
      // Anything stored between the history fetch and this moment arrives only via history.
      syncHistory().catch(() => {});
    });
    ws.addEventListener("message", onFrame);
    ws.addEventListener("close", () => {
      if (state.ws === ws) dropSocket();
    });
  }

  function dropSocket() {
    const ws = state.ws;
    state.ws = null; // detach first: a dead socket's close event may come late or never
    clearTimeout(state.ackWatchdog);
    hideTyping();
    if (ws && ws.readyState !== WebSocket.CLOSED) ws.close();
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearTimeout(state.reconnectTimer);
    state.attempt += 1;
    setStatus(navigator.onLine === false ? T.offline : T.reconnecting);
    // Exponential backoff with jitter so a restarted hub is not hit by every visitor at once.
    const base = Math.min(BACKOFF_MAX_MS, 500 * 2 ** Math.min(state.attempt, 6));
    const delay = base / 2 + Math.random() * (base / 2);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  // The browser knows before the socket does: say so at once; messages written meanwhile
  // wait in the outbox (state.unacked) and go out with their client_id on reconnect.
  window.addEventListener("offline", () => {
    if (!state.started) return;
    setStatus(T.offline);
    if (state.ws) dropSocket();
  });
  window.addEventListener("online", () => {
    if (!state.started) return;
    setStatus(T.connecting);
    if (!state.ws) {
      state.attempt = 0;
      connect();
    }
  });
  document.addEventListener("visibilitychange", scheduleReceipts);

  // A returning visitor resumes at once, so pending messages go out and replies
  // raise the unread dot; a new visitor only creates a conversation when they open the chat.
  if (state.token || state.unacked.length) start();
})();
