/*
 * omnihub knowledge-base editor (issue #3). Contract: docs/api.md ("Knowledge base").
 * Plain ES2020, no build step. User text only ever reaches the DOM through textContent;
 * server HTML (article previews, search highlights) is rebuilt node by node from an
 * allow-list, never assigned with innerHTML.
 */
(() => {
  "use strict";

  const STRINGS = {
    en: {
      title: "omnihub knowledge base", kb: "Knowledge base", inboxLink: "Inbox",
      skip: "Skip to content", language: "Language", signOut: "Sign out", signInTitle: "Sign in",
      email: "Email", password: "Password", signIn: "Sign in",
      invalidLogin: "Invalid email or password.", loginFailed: "Could not sign in right now. Please try again.",
      readOnlyBanner: "Read-only: you can read articles and test the bot; only editors can change them.",
      sections: "Sections", tabArticles: "Articles", tabConsole: "Test the bot", tabGaps: "Content gaps",
      tabSynonyms: "Synonyms", articleList: "Articles", filterText: "Search titles and text",
      filterStatus: "Status", filterLanguage: "Language", any: "Any", newArticle: "New article",
      noArticles: "No articles match.", selectArticle: "Select an article, or create a new one.",
      status_draft: "Draft", status_in_review: "In review", status_published: "Published",
      status_archived: "Archived", lang_en: "English", lang_zh: "Chinese",
      articleId: "Article ID (optional)",
      articleIdHint: "No spaces, “/” or “\\”; made from the title when left empty.",
      fieldTitle: "Title", fieldLanguage: "Language", fieldTags: "Tags", tagsHint: "Separate tags with commas.",
      fieldQuestions: "Alternate questions",
      questionsHint: "How customers actually ask. Enter in a question adds another one.",
      addQuestion: "Add question", question: "Question", questionN: "Alternate question {n}",
      remove: "Remove", removeQuestionN: "Remove alternate question {n}",
      fieldShortAnswer: "Short answer", shortHint: "What the bot says in chat; the full article is linked after it.",
      shortCount: "{n} of {max} characters", fieldBody: "Body (Markdown)", actions: "Actions",
      save: "Save", unsaved: "Unsaved changes", preview: "Preview (as saved)",
      previewStale: "The preview shows the last saved version; save to update it.",
      previewNew: "Save the article to see how it will look.",
      history: "Version history", historyNew: "The history starts with the first save.",
      newArticleHeading: "New article", versionN: "Version {n}", updatedBy: "Updated {time} by {name}",
      updatedAt: "Updated {time}",
      to_in_review: "Submit for review", to_published: "Publish", to_archived: "Archive",
      to_draft: "Back to draft",
      view: "View", restore: "Restore", viewVersionN: "View version {n}", restoreVersionN: "Restore version {n}",
      current: "current", byName: "by {name}", changed: "Changed: {fields}", close: "Close",
      versionViewTitle: "Version {n} ({status}), read-only",
      field_title: "title", field_body: "body", field_questions: "alternate questions",
      field_short_answer: "short answer", field_language: "language", field_tags: "tags",
      field_status: "status", field_id: "ID",
      feedback: "Helpful {up} · Not helpful {down}",
      created: "Created the draft “{title}” (version 1).", saved: "Saved “{title}”: version {n}.",
      statusNow: "“{title}” is now {status}.", restored: "Restored version {old}; it is now version {n}.",
      noChanges: "Nothing to save.", titleRequired: "Enter a title first.",
      conflict:
        "Someone else saved this article while you were editing. " +
        "Reload to see their version; your unsaved changes will be lost.",
      reload: "Reload article", reloaded: "Reloaded the latest version.",
      invalidTransition: "That status change is not allowed any more; the article has changed. Reload it.",
      forbidden: "Your role cannot make this change.", notFound: "That no longer exists.",
      invalidInput: "Please check the form: {detail}", actionFailed: "That did not work: {detail}",
      discardQuestion: "You have unsaved changes. Discard them?", discard: "Discard changes",
      keepEditing: "Keep editing",
      consoleIntro: "Ask like a customer would and see which published article the bot would answer with.",
      ask: "Ask", botAnswers: "The bot would answer with “{title}”.",
      botEscalates: "The bot would not answer: it would hand the customer over to an agent.",
      noHits: "No published article matches.", didYouMean: "Did you mean “{text}”?",
      searchSuggestion: "Search for “{text}”", score: "score {score}", openArticle: "Open in editor",
      answerMark: "Bot's answer", hitsLabel: "Matching articles",
      channel: "Channel", botReply: "What the customer gets", channel_webchat: "Web chat",
      channel_telegram: "Telegram", channel_email: "E-mail", channel_fax: "Fax",
      channel_voice: "Phone (voice)", channel_sms: "SMS",
      gapsIntro: "Questions the bot could not answer, grouped by similarity, most frequent first.",
      period: "Period", days7: "Last 7 days", days30: "Last 30 days", days90: "Last 90 days",
      refresh: "Refresh", noGaps: "No unanswered questions in this period.",
      askedTimes: "Asked {count} times · last {time}", askedTimes_one: "Asked once · last {time}",
      createFromGap: "Create article from this",
      createFromGapLabel: "Create article from “{text}”",
      gapDraft: "New draft from the content gap “{text}”: review it and save.",
      synonymsLabel: "Synonym groups",
      synonymsHint: "One group per line, words or phrases separated by commas, e.g. refund, reimbursement.",
      saveSynonyms: "Save synonyms", synonymsSaved: "Saved {count} synonym groups.",
      synonymsSaved_one: "Saved 1 synonym group.",
      archiveTitle: "Archive “{title}”?",
      archiveText: "Customers, the help center and the bot will no longer see it. You can bring it back as a draft later.",
      archiveConfirm: "Archive", cancel: "Cancel",
      synonymsShort: "Line {line} needs at least two words or phrases.",
      tabSuggestions: "Suggestions",
      suggestionsIntro:
        "Questions customers asked before an article helped them. Accept one to add it to the " +
        "article as an alternate question (a new version); nothing changes until you do.",
      suggArticle: "Article", allArticles: "All articles", articleCount: "{title} ({count})",
      sugg_pending: "Waiting for a decision", sugg_accepted: "Accepted", sugg_rejected: "Rejected",
      suggOrder: "Order", orderRecent: "Newest first", orderFrequent: "Most frequent first",
      suggBulk: "Selected suggestions", selectAll: "Select all",
      acceptSelected: "Accept selected ({count})", rejectSelected: "Reject selected ({count})",
      noSuggestions: "No suggestions here.", accept: "Accept", reject: "Reject",
      acceptLabel: "Accept “{q}” as a question of “{title}”", rejectLabel: "Reject “{q}”",
      selectLabel: "Select “{q}”",
      suggMeta: "For “{title}” · seen {count} times · last {time}",
      suggMeta_one: "For “{title}” · seen once · last {time}",
      suggSources: "How: {sources}", source_choice: "picked among the bot's choices",
      source_helpful: "said the bot's answer helped", source_agent: "an agent inserted the article",
      acceptedN: "Added {count} questions to their articles.", acceptedN_one: "Added 1 question to its article.",
      rejectedN: "Rejected {count} suggestions.", rejectedN_one: "Rejected 1 suggestion.",
      nothingDecided: "Someone else decided on these already.",
      suggestedOpen: "Suggested questions waiting: {count}", suggestedN: "{count} suggested",
      gapDraftSave: "Save as draft", gapDraftSaveLabel: "Save a draft article from “{text}”",
      gapDraftSaved: "Saved the draft “{title}” with {count} alternate questions; it is not published.",
    },
    "zh-CN": {
      title: "omnihub 知识库", kb: "知识库", inboxLink: "收件箱",
      skip: "跳到内容", language: "语言", signOut: "退出登录", signInTitle: "登录",
      email: "邮箱", password: "密码", signIn: "登录",
      invalidLogin: "邮箱或密码错误。", loginFailed: "暂时无法登录，请重试。",
      readOnlyBanner: "只读：您可以阅读文章和测试机器人，只有编辑可以修改文章。",
      sections: "栏目", tabArticles: "文章", tabConsole: "测试机器人", tabGaps: "内容缺口",
      tabSynonyms: "同义词", articleList: "文章", filterText: "搜索标题和正文",
      filterStatus: "状态", filterLanguage: "语言", any: "全部", newArticle: "新建文章",
      noArticles: "没有符合条件的文章。", selectArticle: "请选择一篇文章，或新建一篇。",
      status_draft: "草稿", status_in_review: "审核中", status_published: "已发布",
      status_archived: "已归档", lang_en: "英文", lang_zh: "中文",
      articleId: "文章 ID（可选）",
      articleIdHint: "不能含空格、“/”或“\\”；留空则根据标题生成。",
      fieldTitle: "标题", fieldLanguage: "语言", fieldTags: "标签", tagsHint: "多个标签用逗号分隔。",
      fieldQuestions: "相似问法",
      questionsHint: "客户实际的提问方式。在问题中按 Enter 可再添加一个。",
      addQuestion: "添加问法", question: "问题", questionN: "相似问法 {n}",
      remove: "删除", removeQuestionN: "删除相似问法 {n}",
      fieldShortAnswer: "简短回答", shortHint: "机器人在聊天中发送的内容，后面附上完整文章的链接。",
      shortCount: "{n} / {max} 个字符", fieldBody: "正文（Markdown）", actions: "操作",
      save: "保存", unsaved: "有未保存的更改", preview: "预览（已保存版本）",
      previewStale: "预览显示的是上次保存的版本；保存后更新。",
      previewNew: "保存文章后即可预览。",
      history: "版本历史", historyNew: "第一次保存后开始记录历史。",
      newArticleHeading: "新建文章", versionN: "第 {n} 版", updatedBy: "{name} 于 {time} 更新",
      updatedAt: "更新于 {time}",
      to_in_review: "提交审核", to_published: "发布", to_archived: "归档",
      to_draft: "退回草稿",
      view: "查看", restore: "恢复", viewVersionN: "查看第 {n} 版", restoreVersionN: "恢复第 {n} 版",
      current: "当前", byName: "作者：{name}", changed: "修改了：{fields}", close: "关闭",
      versionViewTitle: "第 {n} 版（{status}），只读",
      field_title: "标题", field_body: "正文", field_questions: "相似问法",
      field_short_answer: "简短回答", field_language: "语言", field_tags: "标签",
      field_status: "状态", field_id: "ID",
      feedback: "有帮助 {up} · 没帮助 {down}",
      created: "已创建草稿“{title}”（第 1 版）。", saved: "已保存“{title}”：第 {n} 版。",
      statusNow: "“{title}”现在的状态：{status}。", restored: "已恢复第 {old} 版，现为第 {n} 版。",
      noChanges: "没有需要保存的更改。", titleRequired: "请先填写标题。",
      conflict: "在您编辑期间，其他人已保存了这篇文章。重新加载可查看其版本，您未保存的更改将丢失。",
      reload: "重新加载文章", reloaded: "已加载最新版本。",
      invalidTransition: "此状态变更已不可用，文章已被修改。请重新加载。",
      forbidden: "您的角色无权进行此修改。", notFound: "该内容已不存在。",
      invalidInput: "请检查表单：{detail}", actionFailed: "操作失败：{detail}",
      discardQuestion: "有未保存的更改，要放弃吗？", discard: "放弃更改",
      keepEditing: "继续编辑",
      consoleIntro: "像客户一样提问，看看机器人会用哪篇已发布的文章回答。",
      ask: "提问", botAnswers: "机器人会用“{title}”回答。",
      botEscalates: "机器人不会回答：会把客户转给人工客服。",
      noHits: "没有匹配的已发布文章。", didYouMean: "您是不是要找“{text}”？",
      searchSuggestion: "搜索“{text}”", score: "得分 {score}", openArticle: "在编辑器中打开",
      answerMark: "机器人的回答", hitsLabel: "匹配的文章",
      channel: "渠道", botReply: "客户收到的回复", channel_webchat: "网页聊天",
      channel_telegram: "Telegram", channel_email: "电子邮件", channel_fax: "传真",
      channel_voice: "电话（语音）", channel_sms: "短信",
      gapsIntro: "机器人未能回答的问题，按相似度分组，最常见的在前。",
      period: "时间范围", days7: "最近 7 天", days30: "最近 30 天", days90: "最近 90 天",
      refresh: "刷新", noGaps: "这段时间没有未回答的问题。",
      askedTimes: "被问 {count} 次 · 最近 {time}", createFromGap: "据此创建文章",
      createFromGapLabel: "根据“{text}”创建文章",
      gapDraft: "已根据内容缺口“{text}”新建草稿：请检查后保存。",
      synonymsLabel: "同义词组",
      synonymsHint: "每行一组，词语之间用逗号分隔，例如：退款, 退钱。",
      saveSynonyms: "保存同义词", synonymsSaved: "已保存 {count} 组同义词。",
      archiveTitle: "归档“{title}”？",
      archiveText: "归档后，客户、帮助中心和机器人都将看不到这篇文章。之后可以退回草稿恢复。",
      archiveConfirm: "归档", cancel: "取消",
      synonymsShort: "第 {line} 行至少需要两个词。",
      tabSuggestions: "建议问法",
      suggestionsIntro: "客户在文章帮到他们之前提出的问题。采纳后会作为相似问法加入文章（生成新版本）；在您采纳之前不会有任何改动。",
      suggArticle: "文章", allArticles: "全部文章", articleCount: "{title}（{count}）",
      sugg_pending: "待处理", sugg_accepted: "已采纳", sugg_rejected: "已拒绝",
      suggOrder: "排序", orderRecent: "最新在前", orderFrequent: "最常见在前",
      suggBulk: "所选建议", selectAll: "全选",
      acceptSelected: "采纳所选（{count}）", rejectSelected: "拒绝所选（{count}）",
      noSuggestions: "这里没有建议。", accept: "采纳", reject: "拒绝",
      acceptLabel: "将“{q}”采纳为“{title}”的问法", rejectLabel: "拒绝“{q}”",
      selectLabel: "选择“{q}”",
      suggMeta: "文章“{title}” · 出现 {count} 次 · 最近 {time}",
      suggSources: "来源：{sources}", source_choice: "客户从机器人的选项中选择",
      source_helpful: "客户表示机器人的回答有帮助", source_agent: "客服插入了这篇文章",
      acceptedN: "已将 {count} 个问法加入文章。", rejectedN: "已拒绝 {count} 条建议。",
      nothingDecided: "这些建议已被其他人处理。",
      suggestedOpen: "待处理的建议问法：{count}", suggestedN: "{count} 条建议",
      gapDraftSave: "保存为草稿", gapDraftSaveLabel: "根据“{text}”保存草稿文章",
      gapDraftSaved: "已保存草稿“{title}”，含 {count} 个相似问法；尚未发布。",
    },
  };

  const LANG_KEY = "omnihub.kb.lang";
  const INBOX_LANG_KEY = "omnihub.inbox.lang"; // follow the agent's inbox choice until they pick here
  const EDITOR_ROLES = ["editor", "admin"];
  // Mirrors the server's workflow; the server still decides (409 invalid_transition).
  const TRANSITIONS = {
    draft: ["in_review", "published"],
    in_review: ["draft", "published"],
    published: ["archived", "draft"],
    archived: ["draft"],
  };
  const TABS = ["articles", "console", "gaps", "suggestions", "synonyms"];
  const FILTER_DELAY_MS = 250;
  const $ = (id) => document.getElementById(id);

  const state = {
    lang: initialLanguage(),
    agent: null,
    csrf: null,
    canEdit: false,
    tab: "articles",
    articles: [],
    listSeq: 0,
    filterTimer: null,
    article: null, // the article as last loaded or saved; null while a new one is unsaved
    editing: false, // the form is showing an article (existing or new)
    baseline: "", // the form's values when loaded or saved: differs => unsaved changes
    versions: [],
    busy: false,
    loginErrorKey: null,
    notice: null, // {kind, key, vars, actions} so a language switch can redraw it
    lastSearch: null,
    gaps: [],
    suggestions: [], // the Suggestions tab's list as last loaded
    pending: {}, // open suggestions per article id
    selected: new Set(), // suggestion ids ticked for a bulk decision
  };

  /* ---------- i18n ---------- */

  function initialLanguage() {
    for (const key of [LANG_KEY, INBOX_LANG_KEY]) {
      try {
        const saved = localStorage.getItem(key);
        if (saved && STRINGS[saved]) return saved;
      } catch (_) {
        break;
      }
    }
    return /^zh/i.test(navigator.language || "") ? "zh-CN" : "en";
  }

  function t(key, vars) {
    // With a numeric `count`, the language's plural form where the table has one
    // (`key_one` ...; Chinese has a single form, so it only ever uses `key`).
    if (vars && typeof vars.count === "number") {
      const plural = `${key}_${new Intl.PluralRules(state.lang).select(vars.count)}`;
      if (STRINGS[state.lang][plural] !== undefined) key = plural;
    }
    let text = STRINGS[state.lang][key] ?? STRINGS.en[key] ?? key;
    for (const [name, value] of Object.entries(vars || {})) text = text.split(`{${name}}`).join(value);
    return text;
  }

  function labelFor(prefix, value) {
    const key = prefix + value;
    return STRINGS.en[key] ? t(key) : String(value || "").replace(/_/g, " ");
  }

  function applyStaticTexts() {
    document.documentElement.lang = state.lang;
    document.title = t("title");
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-label]")) {
      node.setAttribute("aria-label", t(node.dataset.i18nLabel));
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
    if (!state.agent) return;
    renderList();
    if (state.editing) {
      renderEditorChrome();
      if (!state.article) renderPreview(); // its placeholder text is translated
    }
    renderQuestionLabels();
    updateCounter();
    renderVersions();
    if (state.lastSearch) renderSearch(state.lastSearch);
    renderGaps();
    renderSuggestions();
    renderPendingCounts();
    if (state.notice) notify(state.notice.kind, state.notice.key, state.notice.vars, state.notice.actions);
  }

  function formatTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    return date.toLocaleString(state.lang, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  /* ---------- HTTP ---------- */

  const { ApiError, createApi, el, signIn, signOut } = window.OmnihubAgent;
  const api = createApi({
    csrf: () => state.csrf,
    signedIn: () => Boolean(state.agent),
    lost: () => sessionLost(),
  });

  const enc = encodeURIComponent;
  const query = (params) =>
    Object.entries(params)
      .filter(([, v]) => v !== "" && v !== null && v !== undefined)
      .map(([k, v]) => `${k}=${enc(v)}`)
      .join("&");

  /* ---------- DOM helpers ---------- */


  function showError(id, text) {
    $(id).textContent = text || "";
    $(id).hidden = !text;
  }

  /**
   * Says `key` in the live region. `actions` ([{key, run, testid}]) become buttons next to
   * it, outside the region, so screen readers announce the message without the buttons.
   */
  function notify(kind, key, vars, actions) {
    state.notice = { kind, key, vars, actions };
    $("notice").dataset.kind = kind;
    $("notice-text").textContent = t(key, vars);
    const buttons = (actions || []).map((a) =>
      el("button", {
        type: "button",
        class: "btn btn-secondary btn-small",
        "data-testid": a.testid,
        text: t(a.key),
        onclick: () => {
          clearNotice();
          a.run();
        },
      }),
    );
    $("notice-actions").replaceChildren(...buttons);
    return buttons;
  }

  function clearNotice() {
    state.notice = null;
    $("notice").dataset.kind = "none";
    $("notice-text").textContent = "";
    $("notice-actions").replaceChildren();
  }

  function notifyError(err, retry) {
    const reload = [{ key: "reload", run: reloadArticle, testid: "reload-btn" }];
    const detail = { detail: err.message || String(err) };
    if (!(err instanceof ApiError)) return notify("error", "actionFailed", detail);
    if (err.code === "version_conflict") return notify("error", "conflict", null, reload);
    if (err.code === "invalid_transition") return notify("error", "invalidTransition", null, reload);
    if (err.status === 403 && err.code !== "csrf_failed") return notify("error", "forbidden");
    if (err.status === 404) return notify("error", "notFound");
    if (err.status === 422 || err.status === 400) return notify("error", "invalidInput", detail);
    return notify("error", "actionFailed", detail, retry ? [{ key: "refresh", run: retry }] : null);
  }

  /* ---------- server HTML, rebuilt safely ---------- */

  const KEEP_TAGS = new Set([
    "P", "BR", "HR", "H1", "H2", "H3", "H4", "H5", "H6", "STRONG", "B", "EM", "I", "U", "S", "DEL",
    "INS", "CODE", "PRE", "KBD", "BLOCKQUOTE", "UL", "OL", "LI", "A", "IMG", "TABLE", "THEAD", "TBODY",
    "TFOOT", "TR", "TH", "TD", "SPAN", "DIV", "SUP", "SUB", "DL", "DT", "DD", "MARK", "SMALL",
  ]);
  // Dropped with everything inside; any other unknown element is unwrapped to its text.
  const DROP_TAGS = new Set([
    "SCRIPT", "STYLE", "IFRAME", "FRAME", "OBJECT", "EMBED", "TEMPLATE", "NOSCRIPT", "SVG", "MATH",
    "FORM", "INPUT", "BUTTON", "TEXTAREA", "SELECT", "LINK", "META", "BASE", "AUDIO", "VIDEO", "CANVAS",
  ]);

  function safeUrl(value, protocols) {
    try {
      const url = new URL(value, location.origin);
      return protocols.includes(url.protocol) ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  function copySafe(source, target) {
    for (const node of source.childNodes) {
      if (node.nodeType === Node.TEXT_NODE) {
        target.append(document.createTextNode(node.data));
        continue;
      }
      if (node.nodeType !== Node.ELEMENT_NODE || DROP_TAGS.has(node.tagName)) continue;
      if (!KEEP_TAGS.has(node.tagName)) {
        copySafe(node, target);
        continue;
      }
      const copy = document.createElement(node.tagName.toLowerCase());
      // Only these attributes survive: no event handlers, no style, no srcset.
      if (node.tagName === "A") {
        const href = safeUrl(node.getAttribute("href") || "", ["http:", "https:", "mailto:", "tel:"]);
        if (href) copy.href = href;
        copy.rel = "noopener noreferrer nofollow";
      } else if (node.tagName === "IMG") {
        const src = safeUrl(node.getAttribute("src") || "", ["http:", "https:"]);
        if (!src) continue;
        copy.src = src;
        copy.alt = node.getAttribute("alt") || "";
      } else if (node.tagName === "TD" || node.tagName === "TH") {
        for (const name of ["colspan", "rowspan"]) {
          const v = node.getAttribute(name);
          if (v && /^\d{1,3}$/.test(v)) copy.setAttribute(name, v);
        }
      } else if (node.tagName === "OL" && /^\d{1,6}$/.test(node.getAttribute("start") || "")) {
        copy.setAttribute("start", node.getAttribute("start"));
      }
      if (node.hasAttribute("title")) copy.title = node.getAttribute("title");
      copySafe(node, copy);
      target.append(copy);
    }
  }

  /** The server's sanitised HTML as DOM nodes, re-sanitised here as a second line of defence. */
  function safeFragment(html) {
    // DOMParser builds an inert document: scripts do not run and images do not load in it.
    const doc = new DOMParser().parseFromString(String(html || ""), "text/html");
    const frag = document.createDocumentFragment();
    copySafe(doc.body, frag);
    return frag;
  }

  function decodeEntities(text) {
    if (!text.includes("&")) return text;
    return new DOMParser().parseFromString(text, "text/html").body.textContent;
  }

  /** A search highlight: escaped text with <mark> tags and nothing else, or plain text. */
  function highlightFragment(html) {
    const frag = document.createDocumentFragment();
    const parts = String(html || "").split(/(<mark>|<\/mark>)/);
    const onlyMarks = parts.every((p) => p === "<mark>" || p === "</mark>" || !/[<>]/.test(p));
    if (!onlyMarks) {
      // Not the shape the contract promises: show its text, never its markup.
      frag.append(new DOMParser().parseFromString(String(html), "text/html").body.textContent);
      return frag;
    }
    let mark = null;
    for (const part of parts) {
      if (part === "<mark>") {
        if (!mark) frag.append((mark = document.createElement("mark")));
      } else if (part === "</mark>") {
        mark = null;
      } else if (part) {
        (mark || frag).append(decodeEntities(part));
      }
    }
    return frag;
  }

  /* ---------- sign in / out ---------- */

  function showLogin() {
    $("app-view").hidden = true;
    $("agent-box").hidden = true;
    $("login-view").hidden = false;
    $("login-email").focus();
  }

  function signedIn(data) {
    state.agent = data.agent;
    state.csrf = data.csrf_token;
    state.canEdit = EDITOR_ROLES.includes(data.agent.role);
    state.loginErrorKey = null;
    showError("login-error", "");
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    $("agent-box").hidden = false;
    $("agent-name").textContent = data.agent.name || data.agent.email;
    applyRole();
    selectTab(tabFromHash() || state.tab, false);
    loadList().catch((err) => notifyError(err, () => loadList()));
    loadPendingCounts();
  }

  function sessionLost() {
    state.agent = null;
    state.csrf = null;
    state.article = null;
    state.editing = false;
    state.articles = [];
    state.lastSearch = null;
    state.gaps = [];
    state.suggestions = [];
    state.pending = {};
    state.selected.clear();
    $("sugg-list").replaceChildren();
    // Nothing of the previous person's work stays in the page.
    const views = ["article-list", "console-hits", "console-decision", "gap-list", "version-list", "preview"];
    for (const id of views) $(id).replaceChildren();
    $("editor").hidden = true;
    $("editor-empty").hidden = false;
    clearNotice();
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
    $("tab-" + state.tab).focus();
  }

  function onSignOut() {
    return signOut(api, sessionLost);
  }

  function applyRole() {
    const ro = !state.canEdit;
    $("readonly-banner").hidden = !ro;
    for (const id of ["new-article", "save-btn", "add-question", "synonyms-save"]) $(id).hidden = ro;
    // readOnly (not disabled) keeps text focusable and selectable for readers.
    for (const id of ["f-id", "f-title", "f-tags", "f-short", "f-body", "synonyms"]) $(id).readOnly = ro;
    $("f-language").disabled = ro;
  }

  /* ---------- tabs (WAI-ARIA tabs: arrows move, Home/End jump) ---------- */

  function tabFromHash() {
    const name = location.hash.replace(/^#/, "");
    return TABS.includes(name) ? name : null;
  }

  function selectTab(name, focus) {
    state.tab = name;
    for (const tab of TABS) {
      const button = $("tab-" + tab);
      const on = tab === name;
      button.setAttribute("aria-selected", String(on));
      button.tabIndex = on ? 0 : -1;
      $("panel-" + tab).hidden = !on;
    }
    if (focus) $("tab-" + name).focus();
    if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
    if (name === "gaps") loadGaps();
    if (name === "synonyms") loadSynonyms();
    if (name === "suggestions") loadSuggestions();
  }

  function onTabKeydown(e) {
    const i = TABS.indexOf(state.tab);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    selectTab(TABS[(next + TABS.length) % TABS.length], true);
  }

  /* ---------- article list ---------- */

  async function loadList() {
    const seq = ++state.listSeq;
    const params = query({
      status: $("filter-status").value,
      language: $("filter-language").value,
      q: $("filter-q").value.trim(),
      limit: 100,
    });
    const data = await api("GET", "/api/kb/articles?" + params);
    if (seq !== state.listSeq) return; // a newer filter already answered
    state.articles = data.articles || [];
    renderList();
  }

  function scheduleList() {
    clearTimeout(state.filterTimer);
    state.filterTimer = setTimeout(() => loadList().catch((err) => notifyError(err)), FILTER_DELAY_MS);
  }

  function renderList() {
    const list = $("article-list");
    const focusedId = document.activeElement && document.activeElement.dataset.articleId;
    const currentId = state.article && state.article.id;
    const rows = state.articles.map((a) => {
      const up = a.helpful || 0;
      const down = a.not_helpful || 0;
      const button = el(
        "button",
        {
          type: "button",
          class: "article-row",
          "data-testid": "article-row",
          "data-article-id": a.id,
          "aria-current": a.id === currentId ? "true" : null,
          onclick: () => guardUnsaved(() => openArticle(a.id)),
        },
        el("span", { class: "row-title", text: a.title }),
        el("span", { class: "badge", "data-status": a.status, text: labelFor("status_", a.status) }),
        el(
          "span",
          { class: "row-meta" },
          el("span", { text: labelFor("lang_", a.language) }),
          el("span", { text: "v" + a.version }),
          a.tags && a.tags.length ? el("span", { text: "#" + a.tags.join(" #") }) : null,
          up + down ? el("span", { text: t("feedback", { up, down }) }) : null,
          state.pending[a.id]
            ? el("span", { class: "suggested", text: t("suggestedN", { count: state.pending[a.id] }) })
            : null,
        ),
      );
      return el("li", {}, button);
    });
    list.replaceChildren(...rows);
    $("list-empty").hidden = rows.length > 0;
    // Redrawing must not throw a keyboard user's focus back to <body>.
    if (focusedId) {
      const again = list.querySelector(`[data-article-id="${CSS.escape(focusedId)}"]`);
      if (again) again.focus();
    }
  }

  /* ---------- editor: load, read, dirty state ---------- */

  function formValues() {
    const clean = (items) => [...new Set(items.map((s) => s.trim()).filter(Boolean))];
    return {
      title: $("f-title").value.trim(),
      body: $("f-body").value,
      questions: clean([...document.querySelectorAll(".question-row input")].map((i) => i.value)),
      short_answer: $("f-short").value.trim() || null,
      language: $("f-language").value,
      tags: clean($("f-tags").value.split(/[,，、]/)),
    };
  }

  const isDirty = () => state.editing && state.canEdit && JSON.stringify(formValues()) !== state.baseline;

  function fillForm(a) {
    $("f-id").value = "";
    $("f-title").value = a.title || "";
    $("f-body").value = a.body || "";
    $("f-short").value = a.short_answer || "";
    $("f-language").value = a.language === "zh" ? "zh" : "en";
    $("f-tags").value = (a.tags || []).join(", ");
    renderQuestions(a.questions || []);
    updateCounter();
  }

  function showEditor(a, values) {
    state.article = a;
    state.editing = true;
    $("editor-empty").hidden = true;
    $("editor").hidden = false;
    $("version-view").hidden = true;
    fillForm(values || a || {});
    // A blank new article is not "unsaved work"; one pre-filled from a content gap is.
    const prefilled = !a && values && values.title;
    state.baseline = prefilled ? "" : JSON.stringify(formValues());
    renderEditorChrome();
    renderPreview();
    renderList();
  }

  function renderEditorChrome() {
    const a = state.article;
    $("editor-heading").textContent = a ? a.title : t("newArticleHeading");
    $("id-field").hidden = Boolean(a) || !state.canEdit;
    const status = $("editor-status");
    status.hidden = !a;
    if (a) {
      status.dataset.status = a.status;
      status.textContent = labelFor("status_", a.status);
    }
    $("editor-version").textContent = a ? t("versionN", { n: a.version }) : "";
    let updated = "";
    if (a && a.updated_at) {
      const time = formatTime(a.updated_at);
      updated = a.updated_by ? t("updatedBy", { time, name: a.updated_by.name }) : t("updatedAt", { time });
    }
    $("editor-updated").textContent = updated;
    renderSuggestedNote();
    renderWorkflow();
    updateDirty();
  }

  function renderWorkflow() {
    const a = state.article;
    const targets = a && state.canEdit ? TRANSITIONS[a.status] || [] : [];
    const buttons = targets.map((to) =>
      el("button", {
        type: "button",
        class: "btn " + ({ published: "btn-primary", archived: "btn-danger" }[to] || "btn-secondary"),
        "data-testid": "status-to-" + to,
        "data-to": to,
        text: t("to_" + to),
        onclick: () => changeStatus(to),
      }),
    );
    $("workflow").replaceChildren(...buttons);
  }

  function updateDirty() {
    const dirty = isDirty();
    $("dirty-note").hidden = !dirty;
    $("preview-stale").hidden = !(dirty && state.article);
  }

  function renderPreview() {
    const box = $("preview");
    if (!state.article) {
      box.replaceChildren(el("p", { class: "hint", text: t("previewNew") }));
      return;
    }
    box.replaceChildren(safeFragment(state.article.body_html));
  }

  function updateCounter() {
    const max = Number($("f-short").getAttribute("maxlength"));
    const n = $("f-short").value.length; // the unit maxlength counts in
    $("f-short-count").textContent = t("shortCount", { n, max });
    $("f-short-count").dataset.over = String(n > max);
  }

  async function openArticle(id) {
    clearNotice();
    try {
      const a = await api("GET", `/api/kb/articles/${enc(id)}`);
      showEditor(a);
      loadVersions();
      $("f-title").focus();
    } catch (err) {
      notifyError(err);
    }
  }

  function newArticle(values) {
    clearNotice();
    state.versions = [];
    showEditor(null, values || { language: state.lang === "zh-CN" ? "zh" : "en" });
    renderVersions();
    $("f-title").focus();
  }

  async function reloadArticle() {
    if (!state.article) return;
    await openArticle(state.article.id);
    notify("info", "reloaded");
  }

  /** Runs `proceed` now, or after the editor agrees to drop unsaved changes. */
  function guardUnsaved(proceed) {
    if (!isDirty()) return proceed();
    const [discard] = notify("info", "discardQuestion", null, [
      { key: "discard", run: proceed, testid: "discard-btn" },
      { key: "keepEditing", run: () => $("f-title").focus() },
    ]);
    discard.focus();
  }

  /* ---------- alternate questions ---------- */

  function questionRow(text) {
    const input = el("input", { type: "text", maxlength: 500, "data-testid": "question-input" });
    input.value = text || "";
    input.readOnly = !state.canEdit;
    input.addEventListener("keydown", (e) => {
      // isComposing: Enter that confirms an IME candidate (Chinese input) must not add a row.
      if (e.key !== "Enter" || e.isComposing || e.keyCode === 229) return;
      e.preventDefault();
      if (state.canEdit) addQuestion(input.closest("li"));
    });
    const li = el("li", { class: "question-row" }, input);
    if (state.canEdit) {
      const remove = el("button", {
        type: "button",
        class: "btn btn-secondary btn-small",
        "data-testid": "question-remove",
        text: t("remove"),
        onclick: () => removeQuestion(li),
      });
      li.append(remove);
    }
    return li;
  }

  function renderQuestions(questions) {
    $("question-list").replaceChildren(...questions.map(questionRow));
    renderQuestionLabels();
  }

  function renderQuestionLabels() {
    const rows = $("question-list").children;
    [...rows].forEach((li, i) => {
      li.querySelector("input").setAttribute("aria-label", t("questionN", { n: i + 1 }));
      const remove = li.querySelector("button");
      if (remove) {
        remove.textContent = t("remove");
        remove.setAttribute("aria-label", t("removeQuestionN", { n: i + 1 }));
      }
    });
  }

  function addQuestion(after) {
    const li = questionRow("");
    if (after) after.after(li);
    else $("question-list").append(li);
    renderQuestionLabels();
    li.querySelector("input").focus();
    updateDirty();
  }

  function removeQuestion(li) {
    const next = li.nextElementSibling || li.previousElementSibling;
    li.remove();
    renderQuestionLabels();
    (next ? next.querySelector("input") : $("add-question")).focus();
    updateDirty();
  }

  /* ---------- save and workflow ---------- */

  /** Saves the form; resolves to true when the server holds what the form shows. */
  async function save() {
    if (state.busy || !state.canEdit) return false;
    const values = formValues();
    if (!values.title) {
      notify("error", "titleRequired");
      $("f-title").focus();
      return false;
    }
    if (state.article && !isDirty()) {
      notify("info", "noChanges");
      return true;
    }
    state.busy = true;
    $("save-btn").disabled = true;
    try {
      const created = !state.article;
      let a;
      if (created) {
        const id = $("f-id").value.trim();
        a = await api("POST", "/api/kb/articles", id ? { id, ...values } : values);
      } else {
        a = await api("PUT", `/api/kb/articles/${enc(state.article.id)}`, {
          ...values,
          version: state.article.version,
        });
      }
      afterWrite(a);
      notify("ok", created ? "created" : "saved", { title: a.title, n: a.version });
      return true;
    } catch (err) {
      notifyError(err);
      return false;
    } finally {
      state.busy = false;
      $("save-btn").disabled = false;
    }
  }

  /** The server's copy replaces ours, keeping the editor's place in the form. */
  function afterWrite(a) {
    const active = document.activeElement;
    showEditor(a);
    loadVersions();
    loadList().catch(() => {});
    if (active && active.isConnected && active !== document.body) active.focus();
    else $("save-btn").focus();
  }

  async function changeStatus(to) {
    if (state.busy) return;
    if (to === "archived" && !(await confirmArchive(state.article.title))) return;
    // Publishing what the editor sees, not the last save: save pending edits first.
    if (isDirty() && !(await save())) return;
    state.busy = true;
    try {
      const a = await api("POST", `/api/kb/articles/${enc(state.article.id)}/status`, { status: to });
      afterWrite(a);
      notify("ok", "statusNow", { title: a.title, status: labelFor("status_", a.status) });
      // The clicked button is gone (the transitions changed); keep focus in the action bar.
      const next = $("workflow").querySelector("button") || $("save-btn");
      if (!next.hidden) next.focus();
    } catch (err) {
      notifyError(err);
    } finally {
      state.busy = false;
    }
  }

  /**
   * Asks before archiving, in a modal <dialog> (focus moves into it and returns to the
   * button; Escape cancels). Resolves true when the editor confirms.
   */
  function confirmArchive(title) {
    const dialog = $("archive-dialog");
    $("archive-title").textContent = t("archiveTitle", { title });
    const opener = document.activeElement;
    return new Promise((resolve) => {
      dialog.returnValue = "";
      dialog.addEventListener(
        "close",
        () => {
          if (opener && opener.isConnected) opener.focus();
          resolve(dialog.returnValue === "confirm");
        },
        { once: true },
      );
      dialog.showModal();
      $("archive-cancel").focus(); // the safe choice first
    });
  }

  /* ---------- version history ---------- */

  async function loadVersions() {
    const id = state.article && state.article.id;
    if (!id) return;
    try {
      const data = await api("GET", `/api/kb/articles/${enc(id)}/versions`);
      if (!state.article || state.article.id !== id) return;
      state.versions = data.versions || [];
      renderVersions();
    } catch (err) {
      notifyError(err);
    }
  }

  function renderVersions() {
    const list = $("version-list");
    if (!state.article) {
      list.replaceChildren(el("li", { class: "hint", text: t("historyNew") }));
      return;
    }
    const rows = state.versions.map((v) => {
      const isCurrent = v.version === state.article.version;
      const fields = (v.changes || []).map((f) => labelFor("field_", f)).join(", ");
      const who = v.author ? t("byName", { name: v.author.name }) + " · " : "";
      const info = el(
        "span",
        { class: "version-info" },
        el("span", { text: v.title }),
        el("span", { class: "version-changes", text: who + formatTime(v.created_at) }),
        fields ? el("span", { class: "version-changes", text: t("changed", { fields }) }) : null,
      );
      const view = el("button", {
        type: "button",
        class: "btn btn-secondary btn-small",
        "data-testid": "version-view-btn",
        "aria-label": t("viewVersionN", { n: v.version }),
        text: t("view"),
        onclick: () => viewVersion(v.version),
      });
      const restore =
        state.canEdit && !isCurrent
          ? el("button", {
              type: "button",
              class: "btn btn-secondary btn-small",
              "data-testid": "version-restore-btn",
              "aria-label": t("restoreVersionN", { n: v.version }),
              text: t("restore"),
              onclick: () => guardUnsaved(() => restoreVersion(v.version)),
            })
          : null;
      return el(
        "li",
        { "data-testid": "version-row", "data-version": v.version },
        el("span", { class: "version-num", text: "v" + v.version }),
        el("span", { class: "badge", "data-status": v.status, text: labelFor("status_", v.status) }),
        isCurrent ? el("span", { class: "hint", text: t("current") }) : null,
        info,
        view,
        restore,
      );
    });
    list.replaceChildren(...rows);
  }

  async function viewVersion(n) {
    try {
      const s = await api("GET", `/api/kb/articles/${enc(state.article.id)}/versions/${n}`);
      const status = labelFor("status_", s.status);
      $("version-view-title").textContent = t("versionViewTitle", { n, status });
      const rows = [
        ["fieldTitle", s.title],
        ["fieldLanguage", labelFor("lang_", s.language)],
        ["fieldTags", (s.tags || []).join(", ")],
        ["fieldQuestions", (s.questions || []).join("\n")],
        ["fieldShortAnswer", s.short_answer || ""],
      ];
      $("version-fields").replaceChildren(
        ...rows.flatMap(([key, value]) => [el("dt", { text: t(key) }), el("dd", { text: value })]),
      );
      // Old snapshots may lack body_html: then show the Markdown source as text.
      $("version-body").replaceChildren(
        s.body_html ? safeFragment(s.body_html) : el("pre", { text: s.body || "" }),
      );
      $("version-view").hidden = false;
      $("version-view").focus();
    } catch (err) {
      notifyError(err);
    }
  }

  async function restoreVersion(n) {
    try {
      const a = await api("POST", `/api/kb/articles/${enc(state.article.id)}/versions/${n}/restore`, {});
      afterWrite(a);
      notify("ok", "restored", { old: n, n: a.version });
    } catch (err) {
      notifyError(err);
    }
  }

  /* ---------- test the bot ---------- */

  async function onAsk(e) {
    e.preventDefault();
    const q = $("console-q").value.trim();
    if (!q) return $("console-q").focus();
    await ask(q);
  }

  async function ask(q) {
    $("console-ask").disabled = true;
    try {
      const params = query({ q, lang: $("console-lang").value, limit: 5, channel: $("console-channel").value });
      state.lastSearch = await api("GET", "/api/kb/search?" + params);
      renderSearch(state.lastSearch);
    } catch (err) {
      notifyError(err);
    } finally {
      $("console-ask").disabled = false;
    }
  }

  // A reply as the customer sees it: the hub's sanitised HTML of the Markdown it sends.
  function botText(msg) {
    const node = el("div", { class: "bot-text", "data-testid": "console-reply-text" });
    if (typeof msg.html === "string") node.innerHTML = msg.html;
    else node.textContent = msg.text;
    return node;
  }

  function renderSearch(r) {
    const hits = r.hits || [];
    const answers = r.decision === "answer" && r.answer;
    const answer = answers ? hits.find((h) => h.article_id === r.answer) : null;
    const decision = $("console-decision");
    decision.dataset.decision = answers ? "answer" : "escalate";
    // The answer is always among the hits; the id is a fallback should that ever change.
    decision.textContent = answers
      ? t("botAnswers", { title: answer ? answer.title : r.answer })
      : t("botEscalates");

    // What the bot would send, message by message, as the channel gets it (Markdown text).
    const messages = (r.reply && r.reply.messages) || [];
    $("console-reply").hidden = !messages.length;
    $("console-reply-messages").replaceChildren(
      ...messages.map((msg) =>
        el("div", { class: "bot-message", "data-testid": "console-reply-message" },
          botText(msg),
          msg.choices && msg.choices.length
            ? el("p", { class: "bot-choices", text: msg.choices.map((c) => `[${c}]`).join(" ") })
            : null),
      ),
    );

    const suggestion = $("console-suggestion");
    suggestion.hidden = !r.suggestion;
    if (r.suggestion) {
      const again = el("button", {
        type: "button",
        class: "link-button",
        "data-testid": "console-suggestion-btn",
        text: t("searchSuggestion", { text: r.suggestion }),
        onclick: () => {
          $("console-q").value = r.suggestion;
          ask(r.suggestion);
        },
      });
      suggestion.replaceChildren(t("didYouMean", { text: r.suggestion }) + " ", again);
    }

    const list = $("console-hits");
    list.setAttribute("aria-label", t("hitsLabel"));
    if (!hits.length) {
      list.replaceChildren(el("li", { class: "hint", text: t("noHits") }));
      return;
    }
    list.replaceChildren(
      ...hits.map((h) => {
        const isAnswer = answer && h.article_id === answer.article_id;
        const open = el("button", {
          type: "button",
          class: "link-button",
          title: t("openArticle"),
          text: h.title,
          onclick: () =>
            guardUnsaved(() => {
              selectTab("articles");
              openArticle(h.article_id);
            }),
        });
        return el(
          "li",
          {
            class: "hit",
            "data-testid": "console-hit",
            "data-article-id": h.article_id,
            "data-answer": String(Boolean(isAnswer)),
          },
          el(
            "div",
            { class: "hit-head" },
            el("strong", {}, open),
            el("span", { class: "hit-score", text: t("score", { score: Number(h.score).toFixed(2) }) }),
            el("span", { text: labelFor("lang_", h.language) }),
            isAnswer ? el("span", { class: "badge answer-mark", text: t("answerMark") }) : null,
          ),
          el("p", { class: "hit-highlight", "data-testid": "console-highlight" },
            highlightFragment(h.highlight)),
          h.short_answer ? el("p", { class: "hit-short", text: h.short_answer }) : null,
        );
      }),
    );
  }

  /* ---------- content gaps ---------- */

  async function loadGaps() {
    try {
      const data = await api("GET", "/api/kb/gaps?" + query({ days: $("gaps-days").value }));
      state.gaps = (data.groups || []).slice().sort(
        (a, b) => b.count - a.count || Date.parse(b.last_asked_at || 0) - Date.parse(a.last_asked_at || 0),
      );
      renderGaps();
    } catch (err) {
      notifyError(err, loadGaps);
    }
  }

  function renderGaps() {
    $("gaps-empty").hidden = state.gaps.length > 0;
    $("gap-list").replaceChildren(
      ...state.gaps.map((g) => {
        const button = (testid, key, run) =>
          state.canEdit
            ? el("button", {
                type: "button",
                class: "btn btn-secondary btn-small",
                "data-testid": testid,
                "aria-label": t(key + "Label", { text: g.example }),
                text: t(key),
                onclick: () => guardUnsaved(run),
              })
            : null;
        const create = button("gap-create", "createFromGap", () => createFromGap(g));
        const draft = button("gap-draft", "gapDraftSave", () => draftFromGap(g));
        return el(
          "li",
          { class: "gap", "data-testid": "gap-group" },
          el("h3", { text: g.example }),
          el("p", {
            class: "gap-meta",
            text: t("askedTimes", { count: g.count, time: formatTime(g.last_asked_at) }),
          }),
          el("ul", {}, ...(g.questions || []).map((q) => el("li", { text: q }))),
          el("div", { class: "gap-actions" }, create, draft),
        );
      }),
    );
  }

  function createFromGap(g) {
    selectTab("articles");
    const cjk = /[\u3400-\u9fff]/.test(g.example);
    const questions = [...new Set((g.questions || []).map((q) => q.trim()).filter(Boolean))];
    newArticle({ title: g.example, questions, language: cjk ? "zh" : "en" });
    notify("info", "gapDraft", { text: g.example });
  }

  /** The cluster saved on the server as a draft (never published), then opened. */
  async function draftFromGap(g) {
    if (state.busy) return;
    state.busy = true;
    try {
      const a = await api("POST", "/api/kb/gaps/draft", { questions: g.questions || [g.example] });
      selectTab("articles");
      state.versions = [];
      afterWrite(a);
      $("f-title").focus();
      notify("ok", "gapDraftSaved", { title: a.title, count: (a.questions || []).length });
    } catch (err) {
      notifyError(err);
    } finally {
      state.busy = false;
    }
  }

  /* ---------- suggestions learned from traffic (issue #22) ---------- */

  async function loadPendingCounts() {
    try {
      const data = await api("GET", "/api/kb/suggestions?" + query({ limit: 1 }));
      state.pending = data.pending || {};
      renderPendingCounts();
    } catch (err) {
      /* the counts are a convenience; the tab loads (and reports errors) on its own */
    }
  }

  function renderPendingCounts() {
    const total = Object.values(state.pending).reduce((n, c) => n + c, 0);
    $("suggestions-count").textContent = String(total);
    $("suggestions-count").hidden = total === 0;
    renderArticleChoices();
    renderSuggestedNote();
    if (state.agent) renderList();
  }

  function renderSuggestedNote() {
    const a = state.article;
    const count = (a && state.pending[a.id]) || 0;
    $("suggested-note").hidden = !count;
    $("suggested-open").textContent = t("suggestedOpen", { count });
  }

  function renderArticleChoices() {
    const select = $("sugg-article");
    const keep = select.value;
    const titles = new Map(state.articles.map((a) => [a.id, a.title]));
    for (const s of state.suggestions) titles.set(s.article_id, s.article_title);
    const ids = new Set([...Object.keys(state.pending), ...(keep ? [keep] : [])]);
    const options = [...ids]
      .map((id) => ({ id, title: titles.get(id) || id, count: state.pending[id] || 0 }))
      .sort((x, y) => y.count - x.count || x.title.localeCompare(y.title));
    select.replaceChildren(
      el("option", { value: "", text: t("allArticles") }),
      ...options.map((o) => el("option", { value: o.id, text: t("articleCount", o) })),
    );
    select.value = keep;
  }

  async function loadSuggestions() {
    try {
      const data = await api(
        "GET",
        "/api/kb/suggestions?" +
          query({
            article_id: $("sugg-article").value,
            status: $("sugg-status").value,
            order: $("sugg-order").value,
            limit: 200,
          }),
      );
      state.suggestions = data.suggestions || [];
      state.pending = data.pending || {};
      const shown = new Set(state.suggestions.map((s) => s.id));
      for (const id of [...state.selected]) if (!shown.has(id)) state.selected.delete(id);
      renderSuggestions();
      renderPendingCounts();
    } catch (err) {
      notifyError(err, loadSuggestions);
    }
  }

  function renderSuggestions() {
    const open = $("sugg-status").value === "pending";
    const decide = open && state.canEdit;
    const rows = state.suggestions.map((s) => {
      const q = s.question;
      const box = decide
        ? el("input", {
            type: "checkbox",
            class: "sugg-select",
            "data-testid": "sugg-select",
            "data-id": String(s.id),
            "aria-label": t("selectLabel", { q }),
          })
        : null;
      if (box) {
        box.checked = state.selected.has(s.id);
        box.addEventListener("change", () => toggleSelected(s.id, box.checked));
      }
      const sources = (s.sources || []).map((x) => labelFor("source_", x)).join("; ");
      const buttons = decide
        ? el(
            "div",
            { class: "sugg-actions" },
            el("button", {
              type: "button",
              class: "btn btn-primary btn-small",
              "data-testid": "sugg-accept",
              "aria-label": t("acceptLabel", { q, title: s.article_title }),
              text: t("accept"),
              onclick: () => decideOn("accept", [s.id]),
            }),
            el("button", {
              type: "button",
              class: "btn btn-secondary btn-small",
              "data-testid": "sugg-reject",
              "aria-label": t("rejectLabel", { q }),
              text: t("reject"),
              onclick: () => decideOn("reject", [s.id]),
            }),
          )
        : null;
      return el(
        "li",
        { class: "sugg", "data-testid": "sugg-row", "data-id": String(s.id) },
        box,
        el(
          "div",
          { class: "sugg-text" },
          el("p", { class: "sugg-question", lang: /[\u3400-\u9fff]/.test(q) ? "zh-CN" : null, text: q }),
          el("p", {
            class: "sugg-meta",
            text: t("suggMeta", { title: s.article_title, count: s.count, time: formatTime(s.last_seen_at) }),
          }),
          el("p", { class: "sugg-meta", text: t("suggSources", { sources }) }),
        ),
        buttons,
      );
    });
    $("sugg-list").replaceChildren(...rows);
    $("sugg-empty").hidden = rows.length > 0;
    $("sugg-bulk").hidden = !decide || rows.length === 0;
    renderBulk();
  }

  function toggleSelected(id, on) {
    if (on) state.selected.add(id);
    else state.selected.delete(id);
    renderBulk();
  }

  function renderBulk() {
    const count = state.selected.size;
    const total = state.suggestions.length;
    const all = $("sugg-all");
    all.checked = count > 0 && count === total;
    all.indeterminate = count > 0 && count < total;
    for (const [id, key] of [["sugg-accept-selected", "acceptSelected"], ["sugg-reject-selected", "rejectSelected"]]) {
      $(id).textContent = t(key, { count });
      $(id).disabled = count === 0 || state.busy;
    }
  }

  function selectAll(on) {
    state.selected = new Set(on ? state.suggestions.map((s) => s.id) : []);
    for (const box of document.querySelectorAll(".sugg-select")) box.checked = on;
    renderBulk();
  }

  /** Accept or reject `ids`; focus stays in the list (the next row, else the tab). */
  async function decideOn(action, ids) {
    if (state.busy || !ids.length) return;
    const rows = [...document.querySelectorAll("#sugg-list .sugg")];
    const last = rows.findIndex((r) => ids.includes(Number(r.dataset.id)));
    const after = rows.slice(last + 1).find((r) => !ids.includes(Number(r.dataset.id)));
    state.busy = true;
    renderBulk();
    try {
      const done = await api("POST", `/api/kb/suggestions/${action}`, { ids });
      for (const id of ids) state.selected.delete(id);
      if (done.count === 0) notify("info", "nothingDecided");
      else notify("ok", action === "accept" ? "acceptedN" : "rejectedN", { count: done.count });
      const changed = Object.keys(done.articles || {});
      state.busy = false;
      await loadSuggestions();
      if (changed.length) {
        loadList().catch(() => {});
        refreshOpenArticle(changed);
      }
      const target = after && $("sugg-list").querySelector(`[data-id="${after.dataset.id}"] button, [data-id="${after.dataset.id}"] input`);
      (target || $("tab-suggestions")).focus();
    } catch (err) {
      notifyError(err, () => decideOn(action, ids));
    } finally {
      state.busy = false;
      renderBulk();
    }
  }

  /** The open article was given new questions: show them unless the editor has unsaved work
   * (a save then meets the version check and offers a reload). */
  async function refreshOpenArticle(changed) {
    const a = state.article;
    if (!a || !changed.includes(a.id) || isDirty()) return;
    try {
      showEditor(await api("GET", `/api/kb/articles/${enc(a.id)}`));
      loadVersions();
    } catch (_) {
      /* it is reloaded when next opened */
    }
  }

  function openSuggestionsFor(articleId) {
    $("sugg-article").value = articleId;
    if ($("sugg-article").value !== articleId) {
      renderArticleChoices();
      $("sugg-article").append(el("option", { value: articleId, text: articleId }));
      $("sugg-article").value = articleId;
    }
    $("sugg-status").value = "pending";
    selectTab("suggestions", true);
  }

  /* ---------- synonyms ---------- */

  async function loadSynonyms() {
    const before = $("synonyms").value;
    try {
      const data = await api("GET", "/api/kb/synonyms");
      // What the editor typed while the stored groups were on their way is theirs to keep.
      if ($("synonyms").value !== before) return;
      $("synonyms").value = (data.groups || []).map((g) => g.join(", ")).join("\n");
    } catch (err) {
      notifyError(err, loadSynonyms);
    }
  }

  async function saveSynonyms(e) {
    e.preventDefault();
    const lines = $("synonyms").value.split("\n");
    const groups = [];
    for (const [i, line] of lines.entries()) {
      const words = [...new Set(line.split(/[,，、]/).map((w) => w.trim()).filter(Boolean))];
      if (!words.length) continue;
      if (words.length < 2) {
        notify("error", "synonymsShort", { line: i + 1 });
        return $("synonyms").focus();
      }
      groups.push(words);
    }
    try {
      const data = await api("PUT", "/api/kb/synonyms", { groups });
      $("synonyms").value = (data.groups || groups).map((g) => g.join(", ")).join("\n");
      notify("ok", "synonymsSaved", { count: (data.groups || groups).length });
    } catch (err) {
      notifyError(err);
    }
  }

  /* ---------- start ---------- */

  function bindEvents() {
    $("login-form").addEventListener("submit", onLoginSubmit);
    $("signout").addEventListener("click", onSignOut);
    for (const btn of document.querySelectorAll(".lang-switch button")) {
      btn.addEventListener("click", () => setLanguage(btn.dataset.lang));
    }
    for (const tab of TABS) {
      $("tab-" + tab).addEventListener("click", () => selectTab(tab));
      $("tab-" + tab).addEventListener("keydown", onTabKeydown);
    }
    $("filters").addEventListener("submit", (e) => e.preventDefault());
    $("filter-q").addEventListener("input", scheduleList);
    $("filter-status").addEventListener("change", scheduleList);
    $("filter-language").addEventListener("change", scheduleList);
    $("new-article").addEventListener("click", () => guardUnsaved(() => newArticle()));

    const editor = $("editor");
    editor.addEventListener("submit", (e) => {
      e.preventDefault();
      save();
    });
    editor.addEventListener("input", updateDirty);
    editor.addEventListener("change", updateDirty);
    editor.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") {
        e.preventDefault();
        save();
      }
    });
    $("f-short").addEventListener("input", updateCounter);
    $("add-question").addEventListener("click", () => addQuestion());
    $("version-close").addEventListener("click", () => {
      $("version-view").hidden = true;
      $("history-title").focus();
    });
    $("history-title").tabIndex = -1;

    $("console-form").addEventListener("submit", onAsk);
    $("gaps-form").addEventListener("submit", (e) => {
      e.preventDefault();
      loadGaps();
    });
    $("gaps-days").addEventListener("change", loadGaps);
    $("synonyms-form").addEventListener("submit", saveSynonyms);
    $("suggestions-form").addEventListener("submit", (e) => e.preventDefault());
    for (const id of ["sugg-article", "sugg-status", "sugg-order"]) {
      $(id).addEventListener("change", () => {
        state.selected.clear();
        loadSuggestions();
      });
    }
    $("sugg-all").addEventListener("change", (e) => selectAll(e.target.checked));
    $("sugg-accept-selected").addEventListener("click", () => decideOn("accept", [...state.selected]));
    $("sugg-reject-selected").addEventListener("click", () => decideOn("reject", [...state.selected]));
    $("suggested-open").addEventListener("click", () => {
      if (state.article) guardUnsaved(() => openSuggestionsFor(state.article.id));
    });
    window.addEventListener("beforeunload", (e) => {
      if (isDirty()) e.preventDefault();
    });
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
