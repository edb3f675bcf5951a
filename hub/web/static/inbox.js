/*
 * omnihub agent inbox. Contract: docs/api.md ("Agents").
 * Plain ES2020, no build step. All message text is rendered with textContent.
 */
(() => {
  "use strict";

  const STRINGS = {
    en: {
      title: "omnihub inbox", inbox: "Inbox", skip: "Skip to conversation", language: "Language",
      signOut: "Sign out", signInTitle: "Sign in", email: "Email", password: "Password",
      signIn: "Sign in", invalidLogin: "Invalid email or password.",
      loginFailed: "Could not sign in right now. Please try again.",
      conversations: "Conversations", filter: "Filter conversations", tabOpen: "Open",
      tabMine: "Mine", tabResolved: "Resolved", noConversations: "No conversations",
      selectConversation: "Select a conversation from the list.", needs: "Accessibility needs",
      assignToMe: "Assign to me", resolve: "Resolve", reopen: "Reopen",
      otherConversations: "Other conversations of this contact", messages: "Messages",
      customerTyping: "Customer is typing…", reply: "Reply", replyPlaceholder: "Write a reply…",
      send: "Send", replyHint: "Enter to send, Shift+Enter for a new line",
      agent: "Agent", bot: "Bot", system: "System", customer: "Customer", you: "You",
      noMessages: "No messages yet.", deliveryFailed: "Not delivered",
      reconnecting: "Live updates interrupted. Reconnecting…",
      actionFailed: "That did not work: {detail}",
      invalidTransition: "This conversation's status has changed; the action is no longer possible.",
      status_bot: "Bot", status_queued: "Queued", status_assigned: "Assigned",
      status_pending: "Pending", status_resolved: "Resolved", status_closed: "Closed",
      channel_webchat: "Web chat", channel_email: "Email", channel_telegram: "Telegram",
      channel_voice: "Phone", channel_phone: "Phone", channel_fax: "Fax", channel_sms: "SMS",
      need_deaf_hard_of_hearing: "Deaf / hard of hearing", need_blind_low_vision: "Blind / low vision",
      need_speech_impairment: "Speech impairment", need_cognitive: "Cognitive support",
      need_mobility: "Mobility", need_elderly: "Older customer", need_language_barrier: "Language barrier",
      modality: "Prefers {modality}", modality_text: "text", modality_voice: "voice",
      interpreter: "Interpreter: {language}", newConversation: "New conversation: {name}",
    },
    "zh-CN": {
      title: "omnihub 收件箱", inbox: "收件箱", skip: "跳到会话", language: "语言",
      signOut: "退出登录", signInTitle: "登录", email: "邮箱", password: "密码",
      signIn: "登录", invalidLogin: "邮箱或密码错误。",
      loginFailed: "暂时无法登录，请重试。",
      conversations: "会话", filter: "筛选会话", tabOpen: "进行中",
      tabMine: "我的", tabResolved: "已解决", noConversations: "暂无会话",
      selectConversation: "请从列表中选择一个会话。", needs: "无障碍需求",
      assignToMe: "分配给我", resolve: "标记解决", reopen: "重新打开",
      otherConversations: "该联系人的其他会话", messages: "消息",
      customerTyping: "客户正在输入…", reply: "回复", replyPlaceholder: "输入回复…",
      send: "发送", replyHint: "按 Enter 发送，Shift+Enter 换行",
      agent: "客服", bot: "机器人", system: "系统", customer: "客户", you: "我",
      noMessages: "暂无消息。", deliveryFailed: "发送失败",
      reconnecting: "实时更新已中断，正在重新连接…",
      actionFailed: "操作失败：{detail}",
      invalidTransition: "会话状态已变化，无法执行此操作。",
      status_bot: "机器人", status_queued: "排队中", status_assigned: "已分配",
      status_pending: "待处理", status_resolved: "已解决", status_closed: "已关闭",
      channel_webchat: "网页聊天", channel_email: "邮件", channel_telegram: "Telegram",
      channel_voice: "电话", channel_phone: "电话", channel_fax: "传真", channel_sms: "短信",
      need_deaf_hard_of_hearing: "听障", need_blind_low_vision: "视障",
      need_speech_impairment: "言语障碍", need_cognitive: "认知支持",
      need_mobility: "行动不便", need_elderly: "老年客户", need_language_barrier: "语言障碍",
      modality: "偏好{modality}", modality_text: "文字", modality_voice: "语音",
      interpreter: "翻译：{language}", newConversation: "新会话：{name}",
    },
  };

  const LANG_KEY = "omnihub.inbox.lang";
  const OPEN_STATUSES = ["bot", "queued", "assigned", "pending"];
  const TYPING_SEND_MS = 2000;
  const TYPING_SHOW_MS = 3000;
  const ECHO_TIMEOUT_MS = 5000;
  const $ = (id) => document.getElementById(id);

  const state = {
    lang: initialLanguage(),
    agent: null,
    csrf: null,
    filter: "open",
    convs: new Map(), // id -> ConversationSummary shown in the list
    selectedId: null,
    detail: null, // {conversation, contact, messages, other_conversations}
    listSeq: 0,
    detailSeq: 0,
    listLoading: false,
    missedFrames: [], // events seen while the list was loading, replayed over the fresh list
    fetching: new Set(),
    ws: null,
    wsWanted: false,
    wsAttempt: 0,
    wsTimer: null,
    lastFrameAt: 0,
    typingTimer: null,
    lastTypingSent: 0,
    loginErrorKey: null,
  };

  /* ---------- i18n ---------- */

  function initialLanguage() {
    let saved = null;
    try {
      saved = localStorage.getItem(LANG_KEY);
    } catch (_) {
      saved = null;
    }
    if (saved && STRINGS[saved]) return saved;
    return /^zh/i.test(navigator.language || "") ? "zh-CN" : "en";
  }

  function t(key, vars) {
    let text = STRINGS[state.lang][key] ?? STRINGS.en[key] ?? key;
    for (const [name, value] of Object.entries(vars || {})) text = text.replace(`{${name}}`, value);
    return text;
  }

  function labelFor(prefix, value) {
    const key = prefix + value;
    if (STRINGS.en[key]) return t(key);
    return String(value || "").replace(/_/g, " ");
  }

  function applyStaticTexts() {
    document.documentElement.lang = state.lang;
    document.title = t("title");
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-label]")) {
      node.setAttribute("aria-label", t(node.dataset.i18nLabel));
    }
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    }
    for (const btn of document.querySelectorAll(".lang-switch button")) {
      btn.setAttribute("aria-pressed", String(btn.dataset.lang === state.lang));
    }
    if (state.loginErrorKey) $("login-error").textContent = t(state.loginErrorKey);
  }

  function setLanguage(lang) {
    state.lang = lang;
    try {
      localStorage.setItem(LANG_KEY, lang);
    } catch (_) {
      /* the choice just does not survive a reload */
    }
    applyStaticTexts();
    renderList();
    if (state.detail) renderDetail();
  }

  function formatTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    const sameDay = date.toDateString() === new Date().toDateString();
    const opts = sameDay
      ? { hour: "2-digit", minute: "2-digit" }
      : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
    return date.toLocaleString(state.lang, opts);
  }

  /* ---------- HTTP ---------- */

  const { ApiError, createApi, el, signIn, signOut } = window.OmnihubAgent;
  const api = createApi({
    csrf: () => state.csrf,
    signedIn: () => Boolean(state.agent),
    lost: () => sessionLost(),
  });

  /* ---------- DOM helpers ---------- */


  function showError(id, text) {
    const node = $(id);
    node.textContent = text || "";
    node.hidden = !text;
  }

  function announce(text) {
    // The list is not a live region (it is redrawn often); say the important part once.
    $("announcer").textContent = text;
  }

  function actionErrorText(err) {
    if (err instanceof ApiError && err.code === "invalid_transition") return t("invalidTransition");
    return t("actionFailed", { detail: err.message || String(err) });
  }

  /* ---------- sign in / out ---------- */

  function showLogin() {
    $("app-view").hidden = true;
    $("agent-box").hidden = true;
    $("login-view").hidden = false;
    $("conn-status").textContent = "";
    $("login-email").focus();
  }

  function signedIn(data) {
    state.agent = data.agent;
    state.csrf = data.csrf_token;
    state.loginErrorKey = null;
    showError("login-error", "");
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    $("agent-box").hidden = false;
    $("agent-name").textContent = data.agent.name || data.agent.email;
    // The focused login button just disappeared; start the keyboard user at the filters.
    if ($("login-view").contains(document.activeElement) || document.activeElement === document.body) {
      document.querySelector(".filter").focus();
    }
    setFilter(state.filter);
    connectWs();
  }

  function sessionLost() {
    state.agent = null;
    state.csrf = null;
    state.selectedId = null;
    state.detail = null;
    state.convs.clear();
    $("conv-list").replaceChildren(); // nothing of the previous agent's work stays in the page
    $("messages").replaceChildren();
    disconnectWs();
    $("conv").hidden = true;
    $("detail-empty").hidden = false;
    showLogin();
  }

  async function onLoginSubmit(event) {
    event.preventDefault();
    const data = await signIn(api, (key) => {
      state.loginErrorKey = key;
      showError("login-error", t(key));
    });
    if (data === null) return;
    signedIn(data);
  }

  function onSignOut() {
    return signOut(api, sessionLost);
  }

  /* ---------- conversation list ---------- */

  function matchesFilter(c) {
    if (state.filter === "resolved") return c.status === "resolved";
    if (state.filter === "mine") {
      return c.assignee_id === state.agent.id && c.status !== "resolved" && c.status !== "closed";
    }
    return OPEN_STATUSES.includes(c.status);
  }

  function activity(c) {
    const times = [c.updated_at, c.last_message && c.last_message.created_at].map((s) => Date.parse(s) || 0);
    return Math.max(...times);
  }

  function setFilter(filter) {
    state.filter = filter;
    for (const btn of document.querySelectorAll(".filter")) {
      btn.setAttribute("aria-pressed", String(btn.dataset.filter === filter));
    }
    loadList().catch(() => {});
  }

  async function loadList() {
    const seq = ++state.listSeq;
    state.listLoading = true;
    state.missedFrames = [];
    const queries =
      state.filter === "open"
        ? OPEN_STATUSES.map((s) => `status=${s}`)
        : [state.filter === "mine" ? "assignee=me" : "status=resolved"];
    try {
      const pages = await Promise.all(
        queries.map((q) => api("GET", `/api/conversations?${q}&limit=100`)),
      );
      if (seq !== state.listSeq) return;
      state.convs = new Map();
      for (const page of pages) {
        for (const c of page.conversations || []) if (matchesFilter(c)) state.convs.set(c.id, c);
      }
      const missed = state.missedFrames;
      state.listLoading = false;
      state.missedFrames = [];
      for (const frame of missed) onFrame(frame);
      renderList();
    } finally {
      if (seq === state.listSeq) state.listLoading = false;
    }
  }

  function upsertSummary(c, live) {
    const known = state.convs.get(c.id);
    if (known && Date.parse(c.updated_at) < Date.parse(known.updated_at)) return; // stale replay
    // The hub lists a conversation once it has a message (a visitor who opened the widget and
    // left is not work); live events follow the same rule, so a refetch never drops a row.
    if (!known && !c.last_message) return;
    if (matchesFilter(c)) state.convs.set(c.id, c);
    else state.convs.delete(c.id);
    renderList();
    if (live && !known && state.convs.has(c.id) && !state.listLoading) {
      const contact = c.contact || {};
      announce(t("newConversation", { name: contact.display_name || "#" + c.id }));
    }
  }

  function renderList() {
    const list = $("conv-list");
    const focused = document.activeElement;
    const focusedId = focused && focused.classList.contains("conv-row") ? focused.dataset.conversationId : null;
    const rows = [...state.convs.values()].sort((a, b) => activity(b) - activity(a)).map(renderRow);
    list.replaceChildren(...rows);
    $("list-empty").hidden = rows.length > 0;
    // Rebuilding the list must not throw the keyboard user's focus back to <body>.
    if (focusedId) {
      const again = list.querySelector(`.conv-row[data-conversation-id="${focusedId}"]`);
      if (again) again.focus();
    }
  }

  function authorName(m, contactName) {
    if (m.author === "customer") return contactName || t("customer");
    if (m.author === "agent") return m.author_name || t("agent");
    return t(m.author === "bot" ? "bot" : "system");
  }

  function renderRow(c) {
    const contactName = (c.contact && c.contact.display_name) || "#" + c.id;
    const last = c.last_message;
    let preview = "";
    if (last) {
      const who = last.author === "customer" ? "" : authorName(last) + ": ";
      preview = who + (last.text || "").replace(/\s+/g, " ").slice(0, 140);
    }
    const button = el(
      "button",
      {
        type: "button",
        class: "conv-row",
        "data-testid": "conversation-row",
        "data-conversation-id": c.id,
        "aria-current": c.id === state.selectedId ? "true" : null,
      },
      el("span", { class: "row-name", text: contactName }),
      el("span", { class: "row-time", text: formatTime(last ? last.created_at : c.updated_at) }),
      el(
        "span",
        { class: "row-meta" },
        el("span", { class: "badge", "data-status": c.status, text: labelFor("status_", c.status) }),
        el("span", { text: labelFor("channel_", c.channel) }),
      ),
      el("span", { class: "row-preview", text: preview }),
    );
    button.addEventListener("click", () => openConversation(c.id));
    return el("li", {}, button);
  }

  async function fetchSummary(id) {
    // An event about a conversation we have never seen (e.g. it changed filter): load it once.
    if (state.fetching.has(id)) return;
    state.fetching.add(id);
    try {
      const data = await api("GET", `/api/conversations/${id}`);
      upsertSummary(data.conversation, true);
    } catch (_) {
      /* it will show up on the next list refresh */
    } finally {
      state.fetching.delete(id);
    }
  }

  /* ---------- open conversation ---------- */

  async function openConversation(id) {
    state.selectedId = id;
    hideTyping();
    showError("detail-error", "");
    renderList();
    const seq = ++state.detailSeq;
    try {
      const data = await api("GET", `/api/conversations/${id}`);
      if (seq !== state.detailSeq) return;
      state.detail = data;
      renderDetail();
    } catch (err) {
      if (seq === state.detailSeq) showError("detail-error", actionErrorText(err));
    }
  }

  function renderDetail() {
    const { conversation: c, contact } = state.detail;
    $("detail-empty").hidden = true;
    $("conv").hidden = false;
    $("conv-title").textContent = (contact && contact.display_name) || "#" + c.id;
    renderHeader();
    renderNeeds(contact);
    renderOthers(state.detail.other_conversations || []);
    renderMessages();
  }

  function renderHeader() {
    const c = state.detail.conversation;
    const status = $("conv-status");
    status.textContent = labelFor("status_", c.status);
    status.dataset.status = c.status;
    $("conv-channel").textContent = labelFor("channel_", c.channel);
    const mine = state.agent && c.assignee_id === state.agent.id;
    $("assign-btn").hidden = !(OPEN_STATUSES.includes(c.status) && !mine);
    $("resolve-btn").hidden = !OPEN_STATUSES.includes(c.status);
    $("reopen-btn").hidden = c.status !== "resolved" && c.status !== "closed";
  }

  function renderNeeds(contact) {
    const a11y = (contact && contact.accessibility) || {};
    const items = (a11y.needs || []).map((need) => labelFor("need_", need));
    if (a11y.preferred_modality) {
      items.push(t("modality", { modality: labelFor("modality_", a11y.preferred_modality) }));
    }
    if (a11y.interpreter_language) items.push(t("interpreter", { language: a11y.interpreter_language }));
    $("conv-needs").replaceChildren(...items.map((text) => el("li", { text })));
    $("conv-needs").hidden = items.length === 0;
  }

  function renderOthers(others) {
    $("others").hidden = others.length === 0;
    const items = others.map((o) => {
      const text = [
        "#" + o.id,
        labelFor("channel_", o.channel),
        labelFor("status_", o.status),
        formatTime(o.updated_at),
      ].join(" · ");
      const button = el("button", { type: "button", "data-other-id": o.id, text });
      button.addEventListener("click", () => openConversation(o.id));
      return el("li", {}, button);
    });
    $("others-list").replaceChildren(...items);
  }

  function renderMessage(m) {
    const contactName = state.detail.contact && state.detail.contact.display_name;
    const name = authorName(m, contactName);
    const failed = m.delivery_state === "failed";
    return el(
      "div",
      {
        class: "msg",
        role: "article",
        "aria-label": name,
        "data-testid": "conv-message",
        "data-author": m.author,
        "data-message-id": m.id,
      },
      el(
        "div",
        { class: "msg-meta" },
        el("span", { class: "msg-author", text: name }),
        el("time", { datetime: m.created_at, text: formatTime(m.created_at) }),
        failed ? el("span", { class: "msg-failed", text: t("deliveryFailed") }) : null,
      ),
      el("p", { class: "msg-text", text: m.text || "" }),
    );
  }

  function renderMessages() {
    const box = $("messages");
    const messages = state.detail.messages;
    // A redraw is not news: keep screen readers from reading the whole history out again.
    box.setAttribute("aria-busy", "true");
    requestAnimationFrame(() => box.removeAttribute("aria-busy"));
    box.replaceChildren(
      ...(messages.length ? messages.map(renderMessage) : [el("p", { class: "hint", text: t("noMessages") })]),
    );
    box.scrollTop = box.scrollHeight;
  }

  function addMessage(m) {
    const messages = state.detail.messages;
    const known = messages.findIndex((x) => x.id === m.id);
    if (known >= 0) {
      messages[known] = m; // e.g. a delivery-state change
      renderMessages();
      return;
    }
    const box = $("messages");
    const nearEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
    if (messages.length && messages[messages.length - 1].id > m.id) {
      messages.push(m);
      messages.sort((a, b) => a.id - b.id);
      renderMessages();
      return;
    }
    if (!messages.length) box.replaceChildren();
    messages.push(m);
    box.append(renderMessage(m));
    if (nearEnd || m.author === "agent") box.scrollTop = box.scrollHeight;
  }

  function keepFocusAfterAction() {
    // The clicked button may have just been hidden (Resolve -> Reopen): keep focus nearby.
    const active = document.activeElement;
    if (active && active !== document.body && active.offsetParent !== null) return;
    const next = ["reopen-btn", "resolve-btn", "assign-btn"].map($).find((b) => !b.hidden);
    (next || $("reply-input")).focus();
  }

  async function runAction(kind) {
    const id = state.selectedId;
    showError("detail-error", "");
    try {
      const data = await api("POST", `/api/conversations/${id}/${kind}`, {});
      applyConversation(data.conversation);
      expectEcho();
    } catch (err) {
      showError("detail-error", actionErrorText(err));
    }
    keepFocusAfterAction();
  }

  function applyConversation(c, live) {
    upsertSummary(c, live);
    if (state.detail && state.detail.conversation.id === c.id) {
      state.detail.conversation = c;
      renderHeader();
    }
  }

  /* ---------- reply ---------- */

  async function sendReply() {
    const input = $("reply-input");
    const text = input.value.trim();
    const id = state.selectedId;
    if (!text || id === null) return;
    const button = $("reply-send");
    button.disabled = true;
    showError("detail-error", "");
    try {
      const data = await api("POST", `/api/conversations/${id}/messages`, { text });
      input.value = "";
      state.lastTypingSent = 0;
      onMessageCreated(id, data.message);
      expectEcho();
    } catch (err) {
      showError("detail-error", actionErrorText(err));
    } finally {
      button.disabled = false;
    }
  }

  function onReplyKeydown(e) {
    // isComposing: Enter that confirms an IME candidate (Chinese input) must not send.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sendReply();
    }
  }

  function onReplyInput() {
    const now = Date.now();
    if (now - state.lastTypingSent < TYPING_SEND_MS || state.selectedId === null) return;
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.lastTypingSent = now;
      state.ws.send(JSON.stringify({ type: "typing", conversation_id: state.selectedId }));
    }
  }

  function showTyping() {
    $("typing-indicator").hidden = false;
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
  }

  function hideTyping() {
    clearTimeout(state.typingTimer);
    $("typing-indicator").hidden = true;
  }

  /* ---------- live updates ---------- */

  function onMessageCreated(convId, m) {
    const summary = state.convs.get(convId);
    if (summary) {
      if (!summary.last_message || summary.last_message.id <= m.id) summary.last_message = m;
      if (Date.parse(m.created_at) > Date.parse(summary.updated_at)) summary.updated_at = m.created_at;
      renderList();
    } else if (state.filter === "open" || state.filter === "mine") {
      fetchSummary(convId);
    }
    if (state.detail && state.detail.conversation.id === convId) {
      if (m.author === "customer") hideTyping();
      addMessage(m);
    }
  }

  function onFrame(frame) {
    if (!frame || typeof frame !== "object") return;
    if (frame.type === "typing") {
      if (frame.conversation_id === state.selectedId && frame.author === "customer") showTyping();
      return;
    }
    if (frame.type !== "event") return;
    if (state.listLoading) state.missedFrames.push(frame);
    const data = frame.data || {};
    if (frame.kind === "message.created" && data.message) {
      onMessageCreated(frame.conversation_id, data.message);
    } else if (data.conversation) {
      applyConversation(data.conversation, true);
    }
  }

  function wsUrl() {
    return location.origin.replace(/^http/, "ws") + "/api/agent/ws";
  }

  function connectWs() {
    state.wsWanted = true;
    clearTimeout(state.wsTimer);
    const ws = new WebSocket(wsUrl());
    state.ws = ws;
    ws.addEventListener("open", () => {
      const reconnected = state.wsAttempt > 0;
      state.wsAttempt = 0;
      $("conn-status").textContent = "";
      // Events before this moment reach us only through the REST views: the first open
      // closes the gap after the initial list load, a reconnect also refreshes the open conversation.
      if (reconnected) resync();
      else loadList().catch(() => {});
    });
    ws.addEventListener("message", (e) => {
      state.lastFrameAt = Date.now();
      try {
        onFrame(JSON.parse(e.data));
      } catch (_) {
        /* a malformed frame must not break the inbox */
      }
    });
    ws.addEventListener("close", () => {
      if (state.ws !== ws) return;
      state.ws = null;
      if (state.wsWanted) scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    state.wsAttempt += 1;
    $("conn-status").textContent = t("reconnecting");
    const base = Math.min(30000, 500 * 2 ** Math.min(state.wsAttempt, 6));
    const delay = base / 2 + Math.random() * (base / 2);
    state.wsTimer = setTimeout(async () => {
      try {
        await api("GET", "/api/auth/me"); // a refused upgrade looks like any drop; check the session
      } catch (err) {
        if (err.status === 401) return sessionLost();
      }
      if (state.wsWanted) connectWs();
    }, delay);
  }

  function expectEcho() {
    // The hub publishes every change we make. If ours does not come back, the socket only
    // looks open (half-open TCP, a hub process shutting down): replace it, which resyncs.
    const before = state.lastFrameAt;
    const ws = state.ws;
    setTimeout(() => {
      if (!ws || state.ws !== ws || state.lastFrameAt !== before || !state.wsWanted) return;
      state.ws = null;
      ws.close();
      scheduleReconnect();
    }, ECHO_TIMEOUT_MS);
  }

  function disconnectWs() {
    state.wsWanted = false;
    clearTimeout(state.wsTimer);
    if (state.ws) {
      const ws = state.ws;
      state.ws = null;
      ws.close();
    }
  }

  function resync() {
    loadList().catch(() => {});
    if (state.selectedId !== null) openConversation(state.selectedId);
  }

  /* ---------- start ---------- */

  function bindEvents() {
    $("login-form").addEventListener("submit", onLoginSubmit);
    $("signout").addEventListener("click", onSignOut);
    for (const btn of document.querySelectorAll(".lang-switch button")) {
      btn.addEventListener("click", () => setLanguage(btn.dataset.lang));
    }
    for (const btn of document.querySelectorAll(".filter")) {
      btn.addEventListener("click", () => setFilter(btn.dataset.filter));
    }
    $("assign-btn").addEventListener("click", () => runAction("assign"));
    $("resolve-btn").addEventListener("click", () => runAction("resolve"));
    $("reopen-btn").addEventListener("click", () => runAction("reopen"));
    $("reply-form").addEventListener("submit", (e) => {
      e.preventDefault();
      sendReply();
    });
    $("reply-input").addEventListener("keydown", onReplyKeydown);
    $("reply-input").addEventListener("input", onReplyInput);
  }

  async function boot() {
    applyStaticTexts();
    bindEvents();
    try {
      signedIn(await api("GET", "/api/auth/me"));
    } catch (err) {
      if (err.status !== 401) {
        state.loginErrorKey = "loginFailed";
        showError("login-error", t("loginFailed"));
      }
      showLogin();
    }
  }

  boot();
})();
