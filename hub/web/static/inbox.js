/*
 * omnihub agent inbox. Contract: docs/api.md ("Agents").
 * Plain ES2020, no build step. Text is rendered with textContent; the one exception is a
 * message's `html`, which the hub sanitised (docs/api.md).
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
      attachFile: "Attach a file", attachments: "Attachments", removeFile: "Remove",
      insertArticle: "Insert article", findArticle: "Find a published article",
      articleResults: "Articles", noArticleFound: "No published article matches.",
      insertThis: "Insert “{title}”", readArticle: "Read the article",
      inviteTelegram: "Invite to Telegram", inviteLink: "Telegram invite link",
      inviteReady: "Send this link to the customer: it makes their Telegram part of this contact. It works until {time}.",
      inviteAdd: "Add to reply",
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
      handoffTitle: "Handed over by the bot", handoffTopic: "Topic: {topic}",
      handoff_customer_request: "The customer asked for a person", handoff_low_confidence: "The bot could not answer",
      handoff_complaint: "Complaint", handoff_human_only_topic: "A topic for people only",
      handoff_accessibility: "The customer's accessibility profile asks for a person",
      handoff_not_helpful: "The answers did not help", handoff_bot_error: "The bot failed",
      handoffMode_message: "Out of hours: left a message", handoffMode_callback: "Out of hours: asked for a callback",
      handoff_overflow: "No agent was free in time",
      handoffMode_overflow_message: "No agent was free in time: asked to leave a message",
      handoffMode_overflow_callback: "No agent was free in time: to be called back",
      detail_name: "Name", detail_email: "Email", detail_phone: "Phone", detail_order_number: "Order number",
      tag_complaint: "complaint", declined: "(would rather not say)",
      presence: "Presence", presence_available: "Available", presence_busy: "Busy",
      presence_away: "Away", presence_after_contact_work: "After-contact work",
      presence_offline: "Offline", presenceNow: "Your presence is now: {presence}",
      presenceReason_offer_timeout: "Your presence is now Away: an offer was not answered in time.",
      presenceFailed: "Could not change your presence: {detail}",
      offersTitle: "Offered to you", offerFrom: "{name} · {channel}",
      offerNew: "Conversation offered to you: {name}. Accept or decline.",
      offerSkills: "Needs: {skills}", offerNoSkills: "Needs: no particular skill",
      offerPriority: "Priority: {priority}", offerRule: "Rule: {rule}",
      offerWhy: "Best match of {count} available agents (score {score})",
      offerTransferred: "Transferred to you by a colleague",
      offerCountdown: "Expires in {seconds} s", accept: "Accept", decline: "Decline",
      acceptLabel: "Accept conversation with {name}", declineLabel: "Decline conversation with {name}",
      offerGone: "The offer for {name} has ended.",
      priority_low: "low", priority_normal: "normal", priority_high: "high", priority_urgent: "urgent",
      slaWarning: "SLA at risk", slaBreach: "SLA breached",
      sla_first_response: "First response", sla_resolution: "Resolution",
      slaDetail_warning: "{target}: SLA at risk", slaDetail_breach: "{target}: SLA breached",
      transfer: "Transfer", transferTo: "Transfer to", transferAgent: "Agent (ID)",
      transferTeam: "Team", transferTarget: "Agent ID or team name", transferSubmit: "Transfer",
      cancel: "Cancel", transferred: "Conversation transferred.",
      badAgentId: "Enter the agent's number (ID).",
      kbLink: "Knowledge base", visitor: "Visitor {code}", hide: "Hide", show: "Show",
      handoffAsked: "The customer asked", handoffDetails: "Details the bot collected",
      csat: "Rating {score}/5", csatLabel: "Customer rating: {score} out of 5",
      csatContact: "Latest rating of this contact: {score}/5 (conversation #{id})",
      callTitle: "Phone call", callLive: "On the line now ({transport})",
      callEnded: "Call ended after {duration}: {by}",
      callEndedBy_caller: "the caller hung up", callEndedBy_hub: "ended by the hub",
      callEndedBy_error: "the line failed",
      callRelay: "Relay mode: what you send is read out to the caller.",
      callCaptionCaller: "Caller: {text}", callCaptionHub: "Spoken to the caller: {text}",
      replyPlaceholderCall: "Write a reply; it is read out to the caller…",
      transport_sip: "SIP", transport_twilio: "phone number", transport_webrtc: "web call",
      unread: "New",
      delivery_queued: "Waiting to be sent", delivery_sent: "Sent", delivery_delivered: "Delivered",
      delivery_read: "Read", delivery_failed: "Not delivered",
      deliveryReason: "Not delivered: {reason}", resend: "Resend",
      resendUnavailable: "Resending is not available for this message.",
      resendNotFailed: "This message is no longer failed; nothing to resend.",
      resent: "Message queued to be sent again.",
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
      attachFile: "添加附件", attachments: "附件", removeFile: "移除",
      insertArticle: "插入文章", findArticle: "查找已发布的文章",
      articleResults: "文章", noArticleFound: "没有匹配的已发布文章。",
      insertThis: "插入“{title}”", readArticle: "阅读全文",
      inviteTelegram: "邀请到 Telegram", inviteLink: "Telegram 邀请链接",
      inviteReady: "请把此链接发给客户：客户的 Telegram 将并入此联系人。有效期至 {time}。",
      inviteAdd: "添加到回复",
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
      handoffTitle: "机器人转接", handoffTopic: "话题：{topic}",
      handoff_customer_request: "客户要求人工服务", handoff_low_confidence: "机器人无法回答",
      handoff_complaint: "投诉", handoff_human_only_topic: "仅限人工处理的话题",
      handoff_accessibility: "客户的无障碍需求要求人工服务",
      handoff_not_helpful: "回答没有帮助", handoff_bot_error: "机器人出错",
      handoffMode_message: "非工作时间：已留言", handoffMode_callback: "非工作时间：要求回电",
      handoff_overflow: "没有客服人员及时接待",
      handoffMode_overflow_message: "没有客服人员及时接待：请客户留言",
      handoffMode_overflow_callback: "没有客服人员及时接待：需要回电",
      detail_name: "姓名", detail_email: "邮箱", detail_phone: "电话", detail_order_number: "订单号",
      tag_complaint: "投诉", declined: "（不愿提供）",
      presence: "在线状态", presence_available: "空闲", presence_busy: "忙碌",
      presence_away: "离开", presence_after_contact_work: "话后处理",
      presence_offline: "离线", presenceNow: "您的状态已变为：{presence}",
      presenceReason_offer_timeout: "您的状态已变为离开：有一个分配未及时响应。",
      presenceFailed: "无法更改状态：{detail}",
      offersTitle: "分配给您的会话", offerFrom: "{name} · {channel}",
      offerNew: "有会话分配给您：{name}。请接受或拒绝。",
      offerSkills: "所需技能：{skills}", offerNoSkills: "所需技能：无特定要求",
      offerPriority: "优先级：{priority}", offerRule: "规则：{rule}",
      offerWhy: "在 {count} 位可用客服中最匹配（得分 {score}）",
      offerTransferred: "同事转接给您",
      offerCountdown: "{seconds} 秒后过期", accept: "接受", decline: "拒绝",
      acceptLabel: "接受与 {name} 的会话", declineLabel: "拒绝与 {name} 的会话",
      offerGone: "{name} 的会话分配已结束。",
      priority_low: "低", priority_normal: "普通", priority_high: "高", priority_urgent: "紧急",
      slaWarning: "SLA 即将超时", slaBreach: "SLA 已超时",
      sla_first_response: "首次响应", sla_resolution: "解决",
      slaDetail_warning: "{target}：SLA 即将超时", slaDetail_breach: "{target}：SLA 已超时",
      transfer: "转接", transferTo: "转接给", transferAgent: "客服（编号）",
      transferTeam: "团队", transferTarget: "客服编号或团队名称", transferSubmit: "转接",
      cancel: "取消", transferred: "会话已转接。",
      badAgentId: "请输入客服的编号。",
      kbLink: "知识库", visitor: "访客 {code}", hide: "收起", show: "展开",
      handoffAsked: "客户的问题", handoffDetails: "机器人收集的信息",
      csat: "评分 {score}/5", csatLabel: "客户评分：{score}（满分 5）",
      csatContact: "该联系人最近的评分：{score}/5（会话 #{id}）",
      callTitle: "电话", callLive: "通话中（{transport}）",
      callEnded: "通话已结束，时长 {duration}：{by}",
      callEndedBy_caller: "来电者挂断", callEndedBy_hub: "由系统结束", callEndedBy_error: "线路故障",
      callRelay: "转述模式：您发送的内容会读给来电者听。",
      callCaptionCaller: "来电者：{text}", callCaptionHub: "已读给来电者：{text}",
      replyPlaceholderCall: "输入回复，将读给来电者听…",
      transport_sip: "SIP", transport_twilio: "电话号码", transport_webrtc: "网页通话",
      unread: "新消息",
      delivery_queued: "等待发送", delivery_sent: "已发送", delivery_delivered: "已送达",
      delivery_read: "已读", delivery_failed: "发送失败",
      deliveryReason: "发送失败：{reason}", resend: "重新发送",
      resendUnavailable: "此消息无法重新发送。",
      resendNotFailed: "此消息已不是失败状态，无需重新发送。",
      resent: "消息已重新排队发送。",
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
    inviteChannels: [], // channels a contact can be invited to (GET /api/invites/channels)
    filter: "open",
    convs: new Map(), // id -> ConversationSummary shown in the list
    selectedId: null,
    detail: null, // {conversation, contact, messages, other_conversations}
    listSeq: 0,
    detailSeq: 0,
    listLoading: false,
    missedFrames: [], // events seen while the list was loading, replayed over the fresh list
    fetching: new Map(), // conversation id -> whether an event came while it was loading
    readUpTo: new Map(), // conversation id -> newest customer message id marked read
    // The hand-over card folded to its title: by default on a phone, where it would take
    // the room the messages need.
    handoffFolded: window.matchMedia("(max-width: 720px)").matches,
    ws: null,
    wsWanted: false,
    wsAttempt: 0,
    wsTimer: null,
    lastFrameAt: 0,
    typingTimer: null,
    lastTypingSent: 0,
    loginErrorKey: null,
    // Routing (docs/routing.md): on only after the agent websocket's "routing" frame.
    routing: false,
    presence: null, // the agent's presence, or null without a routing profile
    offers: new Map(), // conversation id -> {id, key, expiresAt, why, summary}
    settledOffers: new Set(), // keys of offers already ended: a replayed frame must not revive them
    offerTimer: null,
    rules: new Map(), // conversation id -> the policy filter it was queued under
    sla: new Map(), // conversation id -> {first_response?: "warning"|"breach", resolution?: ...}
    callFetch: null, // the conversation whose call is being fetched
    seenAt: new Map(), // conversation id -> newest updated_at seen (ms), kept when it leaves the list
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

  /**
   * A contact's name as the agent reads it: the web chat's "Visitor 1A2B" for a nameless
   * visitor in the UI's language; "#id" (or null without an id) when there is no name.
   */
  function contactName(contact, id) {
    const name = contact && contact.display_name;
    if (!name) return id === null || id === undefined ? null : "#" + id;
    const visitor = /^Visitor ([0-9A-F]{4})$/.exec(name);
    return visitor ? t("visitor", { code: visitor[1] }) : name;
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
    renderOffers();
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
    loadInviteChannels();
  }

  /* ---------- invites: continue on another channel as the same contact (docs/telegram.md) */

  async function loadInviteChannels() {
    try {
      state.inviteChannels = (await api("GET", "/api/invites/channels")).channels || [];
    } catch (_) {
      state.inviteChannels = []; // no invite button; everything else works
    }
    if (state.detail) renderHeader();
  }

  async function createInvite() {
    const contact = state.detail && state.detail.contact;
    if (!contact) return;
    showError("detail-error", "");
    try {
      const data = await api("POST", `/api/contacts/${contact.id}/invites`, { channel: "telegram" });
      if (!state.detail || state.detail.contact.id !== contact.id) return;
      $("invite-url").value = data.invite.url;
      $("invite-text").textContent = t("inviteReady", { time: formatTime(data.invite.expires_at) });
      $("invite-box").hidden = false;
      $("invite-url").focus();
      $("invite-url").select();
    } catch (err) {
      showError("detail-error", actionErrorText(err));
    }
  }

  function addInviteToReply() {
    const input = $("reply-input");
    const url = $("invite-url").value;
    input.value = input.value.trim() ? `${input.value.trimEnd()}\n${url}` : url;
    input.focus();
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
    resetRouting();
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

  async function onSignOut() {
    // A signed-out agent must not be offered work it cannot see: go offline first.
    if (state.routing && state.presence !== null && state.presence !== "offline") {
      try {
        await api("PUT", "/api/agent/presence", { presence: "offline" });
      } catch (_) {
        /* signing out is what was asked for; the offer timeout covers the rest */
      }
    }
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

  /**
   * The newer of two last messages by id. The same message: the copy already known, kept up
   * to date by its delivery events (an action's answer may carry an older copy).
   */
  function newerMessage(a, b) {
    if (!a) return b || null;
    if (!b) return a;
    return b.id > a.id ? b : a;
  }

  /**
   * A conversation as the list shows it, from any source: a REST list or detail, an action's
   * answer, or a live event. Events about the conversation itself carry no last message, so
   * the one already known stays: the row then reads as the REST list would give it.
   */
  function mergeSummary(known, c) {
    const last = newerMessage(known && known.last_message, c.last_message);
    return last === (c.last_message || null) ? c : { ...c, last_message: last };
  }

  function upsertSummary(c, live, fetched) {
    const known = state.convs.get(c.id);
    // A stale replay: a newer state of it was seen already, even one that took it off this
    // list (a summary fetched while it was briefly reopened must not bring it back after it
    // was resolved again).
    const at = Date.parse(c.updated_at);
    if (at < (state.seenAt.get(c.id) || 0)) return;
    if (at) state.seenAt.set(c.id, at);
    // The hub lists a conversation once it has a message (a visitor who opened the widget and
    // left is not work); live events follow the same rule, so a refetch never drops a row.
    if (!known && !c.last_message) {
      // One with messages that is new to this list (reopened, assigned to me): its event
      // has no last message, the REST view has.
      if (live && !fetched && c.last_message_at && matchesFilter(c)) fetchSummary(c.id);
      return;
    }
    if (matchesFilter(c)) state.convs.set(c.id, mergeSummary(known, c));
    else state.convs.delete(c.id);
    renderList();
    if (live && !known && state.convs.has(c.id) && !state.listLoading) {
      const contact = c.contact || {};
      announce(t("newConversation", { name: contactName(contact, c.id) }));
    }
  }

  function renderList() {
    const list = $("conv-list");
    const focused = document.activeElement;
    const focusedId = focused && focused.classList.contains("conv-row") ? focused.dataset.conversationId : null;
    const rows = [...state.convs.values()]
      .sort((a, b) => activity(b) - activity(a) || b.id - a.id)
      .map(renderRow);
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

  /** A message's text on one line: the rendered HTML's text when there is one. */
  function plainText(m) {
    if (!m.html) return m.text || "";
    const tpl = document.createElement("template");
    tpl.innerHTML = m.html; // inert: a template's content runs no scripts and loads nothing
    for (const block of tpl.content.querySelectorAll("p, li, tr, td, th, br, h1, h2, h3, h4, pre")) {
      block.after(" ");
    }
    return tpl.content.textContent || "";
  }

  /** Unread: the customer wrote last and no agent has read it (contract: POST .../read). */
  function isUnread(c) {
    const last = c.last_message;
    return Boolean(last && last.author === "customer" && last.delivery_state !== "read");
  }

  function csatBadge(c, testid) {
    if (typeof c.csat !== "number") return null;
    return el("span", {
      class: "badge csat", "data-testid": testid, "data-score": c.csat,
      title: t("csatLabel", { score: c.csat }), text: t("csat", { score: c.csat }),
    });
  }

  function renderRow(c) {
    const name = contactName(c.contact, c.id);
    const last = c.last_message;
    let preview = "";
    if (last) {
      const who = last.author === "customer" ? "" : authorName(last) + ": ";
      preview = who + plainText(last).replace(/\s+/g, " ").trim().slice(0, 140);
    }
    const unread = isUnread(c);
    const button = el(
      "button",
      {
        type: "button",
        class: "conv-row",
        "data-testid": "conversation-row",
        "data-conversation-id": c.id,
        "aria-current": c.id === state.selectedId ? "true" : null,
        "data-unread": unread ? "true" : null,
      },
      el("span", { class: "row-name", text: name }),
      el("span", { class: "row-time", text: formatTime(last ? last.created_at : c.updated_at) }),
      el(
        "span",
        { class: "row-meta" },
        el("span", { class: "badge", "data-status": c.status, text: labelFor("status_", c.status) }),
        el("span", { text: labelFor("channel_", c.channel) }),
        slaBadge(c.id),
        csatBadge(c, "row-csat"),
        unread ? el("span", { class: "badge unread", "data-testid": "row-unread", text: t("unread") }) : null,
      ),
      el("span", { class: "row-preview", text: preview }),
    );
    button.addEventListener("click", () => openConversation(c.id));
    return el("li", {}, button);
  }

  async function fetchSummary(id) {
    // An event about a conversation we have never seen (e.g. it changed filter): load it.
    // Events while the answer is on its way may be newer than it (the bot's reply and
    // hand-over right after the customer's first message): then load it once more.
    if (state.fetching.has(id)) {
      state.fetching.set(id, true);
      return;
    }
    state.fetching.set(id, false);
    try {
      const data = await api("GET", `/api/conversations/${id}`);
      upsertSummary(data.conversation, true, true);
    } catch (_) {
      /* it will show up on the next list refresh */
    }
    const again = state.fetching.get(id);
    state.fetching.delete(id);
    if (again) fetchSummary(id);
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
      markRead();
    } catch (err) {
      if (seq === state.detailSeq) showError("detail-error", actionErrorText(err));
    }
  }

  function renderDetail() {
    const { conversation: c, contact } = state.detail;
    $("detail-empty").hidden = true;
    $("conv").hidden = false;
    $("conv-title").textContent = contactName(contact, c.id);
    $("invite-box").hidden = true; // an invite belongs to the contact it was made for
    renderHeader();
    renderNeeds(contact);
    renderHandoff(state.detail.handoff);
    renderCall();
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
    const contact = state.detail.contact;
    const onTelegram = contact && (contact.identities || []).some((i) => i.channel === "telegram");
    $("invite-btn").hidden = !(state.inviteChannels.includes("telegram") && contact && !onTelegram);
    const canTransfer = state.routing && c.status === "assigned" && mine;
    $("transfer-btn").hidden = !canTransfer;
    if (!canTransfer) showTransferForm(false);
    renderDetailSla();
    renderCsat();
  }

  /** The rating of this conversation, and the contact's latest one when it is another's. */
  function renderCsat() {
    const c = state.detail.conversation;
    const badge = $("conv-csat");
    const rated = typeof c.csat === "number";
    badge.hidden = !rated;
    badge.textContent = rated ? t("csat", { score: c.csat }) : "";
    if (rated) badge.title = t("csatLabel", { score: c.csat });
    const latest = [c, ...(state.detail.other_conversations || [])]
      .filter((o) => typeof o.csat === "number")
      .sort((a, b) => (Date.parse(b.resolved_at) || 0) - (Date.parse(a.resolved_at) || 0) || b.id - a.id)[0];
    const line = $("contact-csat");
    line.hidden = !latest || latest.id === c.id;
    line.textContent = line.hidden ? "" : t("csatContact", { score: latest.csat, id: latest.id });
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

  /**
   * The conversation's phone call (relay mode): live or how it ended, and the caller's words
   * as they are recognised. While the call is live, replies are read out to the caller.
   */
  function renderCall() {
    const call = state.detail && state.detail.call;
    const live = Boolean(call && call.live);
    $("call-box").hidden = !call;
    $("call-relay").hidden = !live;
    $("reply-input").placeholder = t(live ? "replyPlaceholderCall" : "replyPlaceholder");
    if (!call) return;
    if (live) {
      $("call-state").textContent = t("callLive", { transport: labelFor("transport_", call.transport) });
    } else {
      $("call-caption").textContent = "";
      const seconds = Math.round(call.duration_s || 0);
      const duration = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
      $("call-state").textContent = t("callEnded", {
        duration,
        by: labelFor("callEndedBy_", call.ended_by || "caller"),
      });
    }
  }

  /** The open conversation's call as the hub has it now (after a call.* event). */
  async function refreshCall(convId) {
    if (state.callFetch === convId) return;
    state.callFetch = convId;
    try {
      const data = await api("GET", `/api/conversations/${convId}`);
      if (state.detail && state.detail.conversation.id === convId) {
        state.detail.call = data.call;
        renderCall();
      }
    } catch (_) {
      /* the next event or a reload shows it */
    } finally {
      state.callFetch = null;
    }
  }

  /** A caption frame: the caller's words so far (partial) or spoken to them (hub). */
  function onCaption(frame) {
    if (!state.detail || state.detail.conversation.id !== frame.conversation_id) return;
    const call = state.detail.call;
    if (!call || call.call_id !== frame.call_id) {
      // The caption came before the call's start event: fetch the call as the hub has it.
      refreshCall(frame.conversation_id);
    }
    const key = frame.speaker === "hub" ? "callCaptionHub" : "callCaptionCaller";
    // A final caller caption arrives as a message too: the line clears for the next words.
    $("call-caption").textContent =
      frame.final && frame.speaker !== "hub" ? "" : frame.text ? t(key, { text: frame.text }) : "";
  }

  /** What the bot collected before it handed the conversation over (reason, tags, details). */
  function renderHandoff(h) {
    const box = $("handoff");
    box.hidden = !h;
    if (!h) return;
    $("handoff-reason").textContent = labelFor("handoff_", h.reason);
    const lines = [];
    if (["message", "callback", "overflow_message", "overflow_callback"].includes(h.mode)) {
      lines.push(el("p", { text: t("handoffMode_" + h.mode) }));
    }
    if (h.topic) lines.push(el("p", { text: t("handoffTopic", { topic: h.topic }) }));
    if (h.summary) {
      lines.push(
        el(
          "div",
          { class: "handoff-summary", "data-testid": "handoff-summary" },
          el("h4", { text: t("handoffAsked") }),
          el("p", { text: h.summary }),
        ),
      );
    }
    if (h.tags.length) {
      const tags = h.tags.map((tag) => el("li", { class: "tag", text: labelFor("tag_", tag) }));
      lines.push(el("ul", { class: "tags", "data-testid": "handoff-tags" }, ...tags));
    }
    const details = Object.entries(h.details || {}).flatMap(([key, value]) => [
      el("dt", { text: labelFor("detail_", key) }),
      el("dd", { text: value === null ? t("declined") : value }),
    ]);
    if (details.length) {
      lines.push(
        el(
          "div",
          { class: "handoff-details", "data-testid": "handoff-details" },
          el("h4", { text: t("handoffDetails") }),
          el("dl", {}, ...details),
        ),
      );
    }
    $("handoff-body").replaceChildren(...lines);
    $("handoff-toggle").hidden = lines.length === 0; // the reason alone: nothing to fold
    foldHandoff(state.handoffFolded);
  }

  function foldHandoff(folded) {
    state.handoffFolded = folded;
    $("handoff-body").hidden = folded;
    const toggle = $("handoff-toggle");
    toggle.setAttribute("aria-expanded", String(!folded));
    toggle.dataset.i18n = folded ? "show" : "hide";
    toggle.textContent = t(toggle.dataset.i18n);
  }

  function renderOthers(others) {
    $("others").hidden = others.length === 0;
    const items = others.map((o) => {
      const text = [
        "#" + o.id,
        labelFor("channel_", o.channel),
        labelFor("status_", o.status),
        formatTime(o.updated_at),
        typeof o.csat === "number" ? t("csat", { score: o.csat }) : null,
      ]
        .filter(Boolean)
        .join(" · ");
      const button = el("button", { type: "button", "data-other-id": o.id, text });
      button.addEventListener("click", () => openConversation(o.id));
      return el("li", {}, button);
    });
    $("others-list").replaceChildren(...items);
  }

  const TICKS = { queued: "⏱", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "⚠" };

  /** The outbound message's delivery state as a tick with its name for screen readers. */
  function deliveryTick(m) {
    if (m.direction !== "outbound" || !TICKS[m.delivery_state]) return null;
    const label = t("delivery_" + m.delivery_state);
    return el("span", {
      class: "msg-tick", role: "img", "data-testid": "msg-delivery", "data-state": m.delivery_state,
      "aria-label": label, title: label, text: TICKS[m.delivery_state],
    });
  }

  /** Bot and agent messages come with sanitised HTML (made on the hub); others are text. */
  function messageBody(m) {
    if (m.html) {
      const body = el("div", { class: "msg-text msg-html" });
      body.innerHTML = m.html;
      return body;
    }
    return el("p", { class: "msg-text", text: m.text || "" });
  }

  function failureNote(m) {
    if (m.delivery_state !== "failed") return null;
    const resend = el("button", {
      type: "button", class: "btn btn-secondary btn-small", "data-testid": "msg-resend", text: t("resend"),
    });
    resend.addEventListener("click", () => resendMessage(m, resend));
    return el(
      "div",
      { class: "msg-failure" },
      el("p", {
        class: "msg-failed", "data-testid": "msg-failure",
        text: m.delivery_error ? t("deliveryReason", { reason: m.delivery_error }) : t("deliveryFailed"),
      }),
      resend,
    );
  }

  function renderMessage(m) {
    const name = authorName(m, contactName(state.detail.contact, null));
    return el(
      "div",
      {
        class: "msg",
        role: "article",
        "aria-label": name,
        "data-testid": "conv-message",
        "data-author": m.author,
        "data-message-id": m.id,
        "data-state": m.direction === "outbound" ? m.delivery_state : null,
      },
      el(
        "div",
        { class: "msg-meta" },
        el("span", { class: "msg-author", text: name }),
        el("time", { datetime: m.created_at, text: formatTime(m.created_at) }),
        deliveryTick(m),
      ),
      messageBody(m),
      renderAttachments(m.attachments || []),
      failureNote(m),
    );
  }

  async function resendMessage(m, button) {
    const convId = m.conversation_id;
    const shown = () => state.detail && state.detail.messages.find((x) => x.id === m.id);
    const before = shown();
    showError("detail-error", "");
    button.disabled = true;
    try {
      const data = await api("POST", `/api/conversations/${convId}/messages/${m.id}/resend`, {});
      // Its delivery events may have come first (each replaces the message): the answer's
      // "queued" must not undo "sent" or a new failure.
      if (shown() === before) onMessageChanged(convId, (data && data.message) || data);
      announce(t("resent"));
    } catch (err) {
      button.disabled = false;
      if (err.status === 404 || err.status === 405) showError("detail-error", t("resendUnavailable"));
      else if (err.code === "not_failed") showError("detail-error", t("resendNotFailed"));
      else showError("detail-error", actionErrorText(err));
    }
  }

  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  function renderAttachments(files) {
    if (!files.length) return null;
    const items = files.map((a) =>
      el(
        "li",
        {},
        el("a", {
          href: a.url,
          target: "_blank",
          rel: "noopener",
          "data-testid": "msg-attachment",
          text: `${a.filename} (${formatSize(a.size)})`,
        }),
      ),
    );
    return el("ul", { class: "msg-attachments", "aria-label": t("attachments") }, ...items);
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
    // Already shown (our own reply, then its event): what we have is as new or newer (its
    // delivery event may have come before the answer to our POST).
    if (messages.some((x) => x.id === m.id)) return;
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
    const next = ["reopen-btn", "resolve-btn", "assign-btn", "transfer-btn"].map($).find((b) => !b.hidden);
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
    if (!state.detail) return;
    if (state.detail.conversation.id === c.id) {
      state.detail.conversation = mergeSummary(state.detail.conversation, c);
      renderHeader();
      return;
    }
    // The contact's other conversations, as the detail view lists them (status, rating).
    const others = state.detail.other_conversations || [];
    const at = others.findIndex((o) => o.id === c.id);
    if (at >= 0) {
      others[at] = mergeSummary(others[at], c);
      renderOthers(others);
      renderCsat();
    }
  }

  /* ---------- reply ---------- */

  async function uploadFiles() {
    const picker = $("reply-file");
    const uploaded = [];
    for (const file of Array.from(picker.files || [])) {
      const form = new FormData();
      form.append("file", file, file.name);
      const data = await api("POST", "/api/attachments", form);
      uploaded.push(data.attachment);
    }
    return uploaded;
  }

  function renderPickedFiles() {
    const files = Array.from($("reply-file").files || []);
    $("reply-files").replaceChildren(...files.map((f) => el("li", { text: f.name })));
  }

  async function sendReply() {
    const input = $("reply-input");
    const text = input.value.trim();
    const id = state.selectedId;
    const picked = ($("reply-file").files || []).length;
    if ((!text && !picked) || id === null) return;
    const button = $("reply-send");
    button.disabled = true;
    showError("detail-error", "");
    try {
      const attachments = await uploadFiles();
      const data = await api("POST", `/api/conversations/${id}/messages`, { text, attachments });
      input.value = "";
      $("reply-file").value = "";
      renderPickedFiles();
      state.lastTypingSent = 0;
      onMessageCreated(id, data.message);
      expectEcho();
    } catch (err) {
      showError("detail-error", actionErrorText(err));
    } finally {
      button.disabled = false;
    }
  }

  /* ---------- insert a knowledge-base article into the reply ---------- */
  // The reply carries the article's short answer and its help-center link; the hub learns
  // from that link which article answered a handed-off question (issue #22).

  let articleTimer = null;
  let articleSeq = 0;

  function showArticlePicker(open) {
    $("article-picker").hidden = !open;
    $("insert-article").setAttribute("aria-expanded", String(open));
    if (open) {
      $("article-q").focus();
      findArticles();
    }
  }

  async function findArticles() {
    const seq = ++articleSeq;
    const q = $("article-q").value.trim();
    const params = new URLSearchParams({ status: "published", limit: "8" });
    if (q) params.set("q", q);
    try {
      const data = await api("GET", "/api/kb/articles?" + params.toString());
      if (seq !== articleSeq) return; // a newer search already answered
      const rows = (data.articles || []).map((a) =>
        el(
          "li",
          {},
          el("button", {
            type: "button",
            class: "btn article-result",
            "data-testid": "article-result",
            lang: a.language === "zh" ? "zh-CN" : "en",
            "aria-label": t("insertThis", { title: a.title }),
            text: a.title,
            onclick: () => insertArticle(a.id),
          }),
        ),
      );
      $("article-results").replaceChildren(...rows);
      $("article-none").hidden = rows.length > 0;
    } catch (err) {
      showError("detail-error", actionErrorText(err));
    }
  }

  async function insertArticle(id) {
    try {
      const a = await api("GET", `/api/kb/articles/${encodeURIComponent(id)}`);
      const url = `${location.origin}/help/articles/${encodeURIComponent(a.id)}`;
      const parts = [`**${a.title}**`, a.short_answer, `[${t("readArticle")}](${url})`];
      const text = parts.filter(Boolean).join("\n\n");
      const input = $("reply-input");
      const at = input.selectionStart ?? input.value.length;
      const before = input.value.slice(0, at);
      const gap = before && !before.endsWith("\n") ? "\n\n" : "";
      input.value = before + gap + text + input.value.slice(input.selectionEnd ?? at);
      showArticlePicker(false);
      input.focus();
      input.selectionStart = input.selectionEnd = (before + gap + text).length;
    } catch (err) {
      showError("detail-error", actionErrorText(err));
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
    // A creation never replaces a copy of the same message: that one is as new or newer.
    const later = (known) => (known && known.id >= m.id ? known : m);
    const summary = state.convs.get(convId);
    if (summary) {
      summary.last_message = later(summary.last_message);
      if (Date.parse(m.created_at) > Date.parse(summary.updated_at)) summary.updated_at = m.created_at;
      renderList();
    } else if (state.filter === "open" || state.filter === "mine") {
      fetchSummary(convId);
    }
    if (state.detail && state.detail.conversation.id === convId) {
      const detail = state.detail.conversation;
      detail.last_message = later(detail.last_message);
      if (m.author === "customer") hideTyping();
      addMessage(m);
      if (m.author === "customer") markRead();
    }
  }

  /** A message changed (its delivery state, a resend): wherever it is shown. */
  function onMessageChanged(convId, m) {
    if (!m || typeof m.id !== "number") return;
    const summary = state.convs.get(convId);
    if (summary && summary.last_message && summary.last_message.id === m.id) {
      summary.last_message = m;
      renderList();
    }
    if (state.detail && state.detail.conversation.id === convId) {
      const detail = state.detail.conversation;
      if (detail.last_message && detail.last_message.id === m.id) detail.last_message = m;
      const messages = state.detail.messages;
      const at = messages.findIndex((x) => x.id === m.id);
      if (at >= 0) {
        messages[at] = m;
        const node = $("messages").querySelector(`[data-message-id="${m.id}"]`);
        if (!node) return renderMessages();
        const hadFocus = node.contains(document.activeElement); // e.g. its Resend button
        const fresh = renderMessage(m);
        node.replaceWith(fresh);
        if (hadFocus) (fresh.querySelector("button") || $("messages")).focus();
      }
    }
  }

  function onDeliveryEvent(convId, data) {
    let m = data.message;
    if (!m || typeof m !== "object") return;
    // A hub without `delivery_error` on messages says why only in the event's `detail`.
    if (!("delivery_error" in m) && typeof data.detail === "string") m = { ...m, delivery_error: data.detail };
    onMessageChanged(convId, m);
  }

  /**
   * Tell the hub (and so the customer: "Seen") that the agent has read the open conversation
   * up to its newest customer message; only while the page is visible, once per message.
   */
  async function markRead() {
    if (!state.detail || document.visibilityState !== "visible" || $("conv").hidden) return;
    const convId = state.detail.conversation.id;
    const newest = state.detail.messages.filter((m) => m.author === "customer").pop();
    if (!newest || newest.delivery_state === "read") return;
    if ((state.readUpTo.get(convId) || 0) >= newest.id) return;
    state.readUpTo.set(convId, newest.id);
    try {
      await api("POST", `/api/conversations/${convId}/read`, { up_to: newest.id });
    } catch (_) {
      return; // a hub without read markers (404), or the conversation is gone: nothing to show
    }
    // What the hub now says about them, without waiting for a reload.
    const read = (m) =>
      m && m.author === "customer" && m.id <= newest.id && m.delivery_state !== "read"
        ? { ...m, delivery_state: "read" }
        : m;
    const summary = state.convs.get(convId);
    if (summary) summary.last_message = read(summary.last_message);
    if (state.detail && state.detail.conversation.id === convId) {
      state.detail.conversation.last_message = read(state.detail.conversation.last_message);
      state.detail.messages = state.detail.messages.map(read);
    }
    renderList();
  }

  function onFrame(frame) {
    if (!frame || typeof frame !== "object") return;
    if (frame.type === "typing") {
      if (frame.conversation_id === state.selectedId && frame.author === "customer") showTyping();
      return;
    }
    if (frame.type === "routing") return onRoutingFrame(frame);
    if (frame.type === "caption") return onCaption(frame);
    if (frame.type !== "event") return;
    if (state.listLoading) state.missedFrames.push(frame);
    const data = frame.data || {};
    if (frame.kind === "routing.decision") {
      onRoutingDecision(frame.conversation_id, data);
    } else if (frame.kind === "agent.presence") {
      onPresenceEvent(data);
    } else if (frame.kind === "conversation.sla") {
      onSlaEvent(frame.conversation_id, data);
    } else if (frame.kind === "message.created" && data.message) {
      onMessageCreated(frame.conversation_id, data.message);
    } else if (frame.kind === "message.delivery") {
      onDeliveryEvent(frame.conversation_id, data);
    } else if (frame.kind === "call.started" || frame.kind === "call.ended") {
      if (state.detail && state.detail.conversation.id === frame.conversation_id) refreshCall(frame.conversation_id);
    } else if (data.conversation) {
      applyConversation(data.conversation, true);
      if (offerIsOver(data.conversation)) endOffer(data.conversation.id, false);
      if (data.handoff && frame.conversation_id === state.selectedId) refreshHandoff(frame.conversation_id);
    }
  }

  async function refreshHandoff(id) {
    // The bot handed over the open conversation: show what it collected (in the API's shape).
    try {
      const data = await api("GET", `/api/conversations/${id}`);
      if (state.selectedId === id && state.detail) {
        state.detail.handoff = data.handoff;
        renderHandoff(data.handoff);
      }
    } catch (_) {
      /* shown the next time the conversation is opened */
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

  /* ---------- routing: presence, offers, SLAs, transfer (docs/routing.md) ---------- */

  const PRESENCES = ["available", "busy", "away", "after_contact_work", "offline"];
  const SLA_RANK = { warning: 1, breach: 2 };

  function resetRouting() {
    state.routing = false;
    state.presence = null;
    state.offers.clear();
    state.settledOffers.clear();
    state.rules.clear();
    state.sla.clear();
    clearInterval(state.offerTimer);
    state.offerTimer = null;
    $("presence-box").hidden = true;
    showError("routing-error", "");
    renderOffers();
  }

  function onRoutingFrame(frame) {
    // Sent on every (re)connect when the hub routes; a hub without routing never sends it,
    // so the inbox then shows none of this.
    state.routing = true;
    state.presence = PRESENCES.includes(frame.presence) ? frame.presence : null;
    renderPresence();
    if (state.detail) renderHeader();
    // Offers made before this page (re)connected: a reload does not lose them.
    for (const offer of Array.isArray(frame.offers) ? frame.offers : []) {
      if (typeof offer.conversation_id === "number" && state.agent && offer.agent_id === state.agent.id) {
        addOffer(offer.conversation_id, offer);
      }
    }
    // Every SLA state reported so far: drawn once, however many conversations have one.
    const slas = Array.isArray(frame.sla) ? frame.sla : [];
    if (slas.map((sla) => applySla(sla.conversation_id, sla)).some(Boolean)) renderSla();
  }

  function renderPresence() {
    // Without a routing profile the agent is not routed to: nothing to choose.
    $("presence-box").hidden = !state.routing || state.presence === null;
    if (state.presence !== null) $("presence-select").value = state.presence;
  }

  async function onPresenceChange() {
    const select = $("presence-select");
    const wanted = select.value;
    showError("routing-error", "");
    select.disabled = true;
    try {
      await api("PUT", "/api/agent/presence", { presence: wanted });
      // The change's event may have come first and announced it already.
      if (state.presence !== wanted) announce(t("presenceNow", { presence: labelFor("presence_", wanted) }));
      state.presence = wanted;
    } catch (err) {
      showError("routing-error", t("presenceFailed", { detail: err.message || String(err) }));
    } finally {
      select.disabled = false;
      renderPresence();
    }
  }

  function onPresenceEvent(data) {
    // The router changes presence itself: away after an unanswered offer, wrap-up and back.
    // "manual": the agent chose it, maybe in another tab, which this one now follows.
    if (!state.agent || data.agent_id !== state.agent.id || !PRESENCES.includes(data.presence)) return;
    if (data.presence === state.presence) return; // nothing new (this tab's own change)
    state.presence = data.presence;
    renderPresence();
    const reasonKey = "presenceReason_" + data.reason;
    announce(STRINGS.en[reasonKey] ? t(reasonKey) : t("presenceNow", { presence: labelFor("presence_", data.presence) }));
  }

  function onRoutingDecision(convId, data) {
    if (typeof convId !== "number" || !state.agent) return;
    if (data.decision === "queued" || data.decision === "skipped") {
      if (data.filter) state.rules.set(convId, data.filter);
      return;
    }
    if (data.decision === "offered" && data.agent_id === state.agent.id) {
      addOffer(convId, data);
    } else {
      // Offered to someone else, declined, expired, assigned, overflowed: not ours (any more).
      endOffer(convId, data.decision === "offer_expired" && data.agent_id === state.agent.id);
    }
  }

  async function addOffer(id, data) {
    const key = `${id}@${data.expires_at}`;
    const expiresAt = Date.parse(data.expires_at);
    if (state.settledOffers.has(key) || !(expiresAt > Date.now())) return;
    const known = state.offers.get(id);
    if (known && known.key === key) return; // a replayed frame
    const offer = { id, key, expiresAt, why: data.why || {}, summary: state.convs.get(id) || null };
    state.offers.set(id, offer);
    renderOffers();
    try {
      const detail = await api("GET", `/api/conversations/${id}`);
      offer.summary = detail.conversation;
      offer.contact = detail.contact;
    } catch (_) {
      /* the card still works with what the event said */
    }
    if (state.offers.get(id) !== offer) return;
    renderOffers();
    announce(t("offerNew", { name: offerName(offer) }));
  }

  function endOffer(id, announceIt) {
    const offer = state.offers.get(id);
    if (!offer) return;
    state.offers.delete(id);
    state.settledOffers.add(offer.key);
    renderOffers();
    if (announceIt) announce(t("offerGone", { name: offerName(offer) }));
  }

  function offerIsOver(c) {
    // Ours now, resolved, back with the bot. (Assigned to someone else is not enough: a
    // transfer offers a conversation that is still assigned to the agent handing it on.)
    return ["resolved", "closed", "bot"].includes(c.status) || (state.agent && c.assignee_id === state.agent.id);
  }

  function offerName(o) {
    const contact = o.contact || (o.summary && o.summary.contact) || {};
    return contactName(contact, o.id);
  }

  function secondsLeft(o) {
    return Math.max(0, Math.ceil((o.expiresAt - Date.now()) / 1000));
  }

  function offerCard(o) {
    const name = offerName(o);
    const s = o.summary || {};
    const skills = (s.required_skills || []).join(", ");
    const chosen = (o.why.candidates || []).find((c) => c.agent_id === o.why.chosen);
    const titleId = `offer-title-${o.id}`;
    const accept = el("button", {
      type: "button", class: "btn btn-primary", "data-testid": "offer-accept",
      "aria-label": t("acceptLabel", { name }), text: t("accept"),
    });
    accept.addEventListener("click", () => respondToOffer(o.id, "accept"));
    const decline = el("button", {
      type: "button", class: "btn btn-secondary", "data-testid": "offer-decline",
      "aria-label": t("declineLabel", { name }), text: t("decline"),
    });
    decline.addEventListener("click", () => respondToOffer(o.id, "decline"));
    return el(
      "li",
      {},
      el(
        "article",
        { class: "offer", "aria-labelledby": titleId, "data-testid": "offer", "data-conversation-id": o.id },
        el("h3", { id: titleId, text: t("offerFrom", { name, channel: labelFor("channel_", s.channel) }) }),
        el("p", { "data-testid": "offer-skills", text: skills ? t("offerSkills", { skills }) : t("offerNoSkills") }),
        s.priority ? el("p", { text: t("offerPriority", { priority: labelFor("priority_", s.priority) }) }) : null,
        state.rules.has(o.id) ? el("p", { text: t("offerRule", { rule: state.rules.get(o.id) }) }) : null,
        o.why.trigger === "transfer" ? el("p", { "data-testid": "offer-why", text: t("offerTransferred") }) : null,
        chosen
          ? el("p", {
              "data-testid": "offer-why",
              text: t("offerWhy", { count: o.why.candidate_count, score: chosen.score.toFixed(2) }),
            })
          : null,
        // role=timer is not announced on every tick; the offer itself was announced once.
        el("p", {
          class: "offer-countdown", role: "timer", "data-testid": "offer-countdown",
          text: t("offerCountdown", { seconds: secondsLeft(o) }),
        }),
        el("div", { class: "offer-actions" }, accept, decline),
      ),
    );
  }

  function renderOffers() {
    const list = $("offers-list");
    const focused = document.activeElement;
    const focusedOffer = list.contains(focused) ? focused.closest(".offer") : null;
    const refocus = focusedOffer && { id: focusedOffer.dataset.conversationId, testid: focused.dataset.testid };
    const offers = [...state.offers.values()].sort((a, b) => a.expiresAt - b.expiresAt);
    list.replaceChildren(...offers.map(offerCard));
    $("offers").hidden = offers.length === 0;
    if (refocus) {
      const again = list.querySelector(
        `.offer[data-conversation-id="${refocus.id}"] [data-testid="${refocus.testid}"]`,
      );
      if (again) again.focus();
      else if (offers.length === 0) (document.querySelector(".filter") || document.body).focus();
    }
    if (offers.length && state.offerTimer === null) state.offerTimer = setInterval(tickOffers, 500);
    if (!offers.length && state.offerTimer !== null) {
      clearInterval(state.offerTimer);
      state.offerTimer = null;
    }
  }

  function tickOffers() {
    for (const o of [...state.offers.values()]) {
      if (o.expiresAt <= Date.now()) {
        endOffer(o.id, true); // the hub withdraws it at the same moment (and sets us away)
        continue;
      }
      const node = $("offers-list").querySelector(
        `.offer[data-conversation-id="${o.id}"] [data-testid="offer-countdown"]`,
      );
      if (node) node.textContent = t("offerCountdown", { seconds: secondsLeft(o) });
    }
  }

  async function respondToOffer(id, action) {
    showError("routing-error", "");
    try {
      const data = await api("POST", `/api/conversations/${id}/${action}`, {});
      endOffer(id, false);
      if (action === "accept") {
        applyConversation(data.conversation);
        await openConversation(id);
        $("reply-input").focus();
      }
    } catch (err) {
      // e.g. 409 no_such_offer: it expired or went elsewhere meanwhile.
      endOffer(id, false);
      showError("routing-error", actionErrorText(err));
    }
  }

  function onSlaEvent(convId, data) {
    if (applySla(convId, data)) renderSla();
  }

  /** Record an SLA state if it is worse than the one known; says whether it was. */
  function applySla(convId, data) {
    if (typeof convId !== "number" || !data || !SLA_RANK[data.state]) return false;
    if (data.target !== "first_response" && data.target !== "resolution") return false;
    const known = state.sla.get(convId) || {};
    if ((SLA_RANK[known[data.target]] || 0) >= SLA_RANK[data.state]) return false;
    state.sla.set(convId, { ...known, [data.target]: data.state });
    return true;
  }

  function renderSla() {
    renderList();
    if (state.detail) renderDetailSla();
  }

  function worstSla(id) {
    const states = Object.values(state.sla.get(id) || {});
    return states.includes("breach") ? "breach" : states.includes("warning") ? "warning" : null;
  }

  function slaBadge(id) {
    const worst = worstSla(id);
    if (!worst) return null;
    return el("span", {
      class: "badge sla", "data-sla": worst, "data-testid": "sla-badge",
      text: t(worst === "breach" ? "slaBreach" : "slaWarning"),
    });
  }

  function renderDetailSla() {
    const node = $("conv-sla");
    const id = state.detail.conversation.id;
    const targets = Object.entries(state.sla.get(id) || {});
    node.hidden = targets.length === 0;
    if (!targets.length) return;
    node.dataset.sla = worstSla(id);
    node.textContent = targets
      .map(([target, s]) => t("slaDetail_" + s, { target: labelFor("sla_", target) }))
      .join(" · ");
  }

  function showTransferForm(show) {
    $("transfer-form").hidden = !show;
    $("transfer-btn").setAttribute("aria-expanded", String(show));
    if (show) $("transfer-target").focus();
  }

  async function onTransferSubmit(event) {
    event.preventDefault();
    const id = state.selectedId;
    const target = $("transfer-target").value.trim();
    if (id === null || !target) return;
    let body;
    if ($("transfer-kind").value === "agent") {
      if (!/^\d{1,18}$/.test(target) || Number(target) < 1) {
        showError("detail-error", t("badAgentId"));
        $("transfer-target").focus();
        return;
      }
      body = { agent_id: Number(target) };
    } else {
      body = { team: target };
    }
    showError("detail-error", "");
    try {
      await api("POST", `/api/conversations/${id}/transfer`, body);
      $("transfer-target").value = "";
      showTransferForm(false);
      announce(t("transferred"));
      $("transfer-btn").focus();
    } catch (err) {
      showError("detail-error", actionErrorText(err));
    }
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
    $("reply-file").addEventListener("change", renderPickedFiles);
    $("reply-input").addEventListener("input", onReplyInput);
    $("insert-article").addEventListener("click", () => showArticlePicker($("article-picker").hidden));
    $("article-q").addEventListener("input", () => {
      clearTimeout(articleTimer);
      articleTimer = setTimeout(findArticles, 250);
    });
    $("article-picker").addEventListener("keydown", (e) => {
      if (e.key !== "Escape") return;
      e.preventDefault();
      showArticlePicker(false);
      $("insert-article").focus();
    });
    $("presence-select").addEventListener("change", onPresenceChange);
    $("transfer-btn").addEventListener("click", () => showTransferForm($("transfer-form").hidden));
    $("transfer-cancel").addEventListener("click", () => {
      showTransferForm(false);
      $("transfer-btn").focus();
    });
    $("transfer-form").addEventListener("submit", onTransferSubmit);
    $("invite-btn").addEventListener("click", createInvite);
    $("invite-add").addEventListener("click", addInviteToReply);
    document.addEventListener("visibilitychange", markRead);
    $("handoff-toggle").addEventListener("click", () => foldHandoff(!state.handoffFolded));
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
