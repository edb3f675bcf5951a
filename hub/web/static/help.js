/*
 * The public help center: published articles, a search that uses the bot's ranking (in both
 * languages, each result labelled with its own), a real "no results" with suggestions, and
 * "was this helpful?" votes (one per visitor: the hub keeps a visitor cookie). Branded with the
 * shop's name and colour (/api/help/site), with a way back to the shop and the chat widget.
 * Reads the public JSON API (/api/help/*); article bodies arrive as HTML the server rendered
 * from Markdown and sanitised (nh3), everything else is set as text.
 */
(function () {
  "use strict";

  const STRINGS = {
    en: {
      title: "Help center", searchLabel: "Search the help center", searchPlaceholder: "Ask a question…",
      search: "Search", articles: "Articles", results: "Results for “{q}”", noArticles: "No articles found.",
      noResults: "No articles match “{q}”", noneTips: "Try other words, or a shorter question.",
      didYouMean: "Did you mean ", popular: "Popular articles", stillNeedHelp: "Still need help?",
      askUs: "Our team answers in chat, in English and 中文.", chat: "Chat with us",
      backToShop: "Back to {shop}", backToShopPlain: "Back to the shop", siteLinks: "Site",
      lang_en: "English", lang_zh: "中文",
      helpful: "Was this article helpful?", yes: "Yes", no: "No", thanks: "Thank you for your feedback.",
      changed: "Thank you: your vote is changed.",
      voteFailed: "Your vote could not be sent; please try again later.", updated: "Last updated {date}",
      missingTitle: "Article not found", allArticles: "See all articles",
      notFound: "This article does not exist or is no longer published.", loadFailed: "The help center could not be loaded.",
      other: "中文",
    },
    "zh-CN": {
      title: "帮助中心", searchLabel: "搜索帮助中心", searchPlaceholder: "输入您的问题…",
      search: "搜索", articles: "文章", results: "“{q}”的搜索结果", noArticles: "没有找到文章。",
      noResults: "没有与“{q}”相关的文章", noneTips: "请换个说法，或把问题写短一些。",
      didYouMean: "您是不是要找：", popular: "热门文章", stillNeedHelp: "仍需帮助？",
      askUs: "我们的客服在聊天中为您解答（中文和英文）。", chat: "联系我们",
      backToShop: "返回{shop}", backToShopPlain: "返回商店", siteLinks: "网站",
      lang_en: "English", lang_zh: "中文",
      helpful: "这篇文章对您有帮助吗？", yes: "有帮助", no: "没有帮助", thanks: "感谢您的反馈。",
      changed: "感谢您：您的评价已更改。",
      voteFailed: "反馈未能发送，请稍后再试。", updated: "最后更新：{date}",
      missingTitle: "找不到文章", allArticles: "查看全部文章",
      notFound: "该文章不存在或已下线。", loadFailed: "帮助中心加载失败。",
      other: "English",
    },
  };

  const $ = (id) => document.getElementById(id);
  const VIEWS = ["list-view", "none-view", "article-view", "missing-view"];
  let locale = pickLocale();
  let site = { name: null, color: null, shop_url: null };

  function pickLocale() {
    const params = new URLSearchParams(location.search);
    const asked = params.get("lang") || localStorage.getItem("omnihub-help-lang") || navigator.language || "en";
    return asked.toLowerCase().startsWith("zh") ? "zh-CN" : "en";
  }

  function t(key, vars) {
    let text = STRINGS[locale][key] || STRINGS.en[key] || key;
    for (const [name, value] of Object.entries(vars || {})) text = text.replace(`{${name}}`, value);
    return text;
  }

  function articleLang() {
    return locale === "zh-CN" ? "zh" : "en";
  }

  function applyStrings() {
    document.documentElement.lang = locale;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    }
    for (const node of document.querySelectorAll("[data-i18n-label]")) {
      node.setAttribute("aria-label", t(node.dataset.i18nLabel));
    }
    $("lang-toggle").textContent = t("other");
    $("lang-toggle").lang = locale === "en" ? "zh-CN" : "en";
    $("shop-link").textContent = site.name ? t("backToShop", { shop: site.name }) : t("backToShopPlain");
  }

  // --- branding -------------------------------------------------------------------------

  function luminance(hex) {
    const channel = (i) => {
      const c = parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
  }

  function applySite() {
    if (site.color) {
      // White text where it reads well on the shop's colour (WCAG contrast 4.5), else dark.
      const ink = 1.05 / (luminance(site.color) + 0.05) >= 4.5 ? "#ffffff" : "#1d1f23";
      document.documentElement.style.setProperty("--brand", site.color);
      document.documentElement.style.setProperty("--brand-ink", ink);
    }
    $("brand-name").textContent = site.name || "";
    $("brand-name").hidden = !site.name;
    if (site.shop_url) $("shop-link").href = site.shop_url;
    $("shop-link").hidden = !site.shop_url;
  }

  async function loadSite() {
    try {
      site = await getJson("/api/help/site");
    } catch (_) {
      return; // unbranded: the help center works the same
    }
    applySite();
    applyStrings();
  }

  // --- chat -----------------------------------------------------------------------------

  function loadWidget() {
    const script = document.createElement("script");
    script.src = "/static/widget.js";
    script.dataset.lang = locale;
    document.body.append(script);
  }

  function openChat() {
    const launcher = document.querySelector('[data-testid="omnihub-launcher"]');
    if (!launcher) return;
    if (launcher.getAttribute("aria-expanded") !== "true") launcher.click();
    else document.querySelector('[data-testid="omnihub-input"]')?.focus();
  }

  // --- data -----------------------------------------------------------------------------

  async function getJson(path) {
    const res = await fetch(path, { headers: { Accept: "application/json" } });
    if (!res.ok) {
      const err = new Error(`HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    return res.json();
  }

  function showError(text) {
    $("error").textContent = text;
    $("error").hidden = !text;
  }

  function show(view) {
    for (const id of VIEWS) $(id).hidden = id !== view;
  }

  function articleItems(articles, labelled) {
    return articles.map((a) => {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = `/help/articles/${encodeURIComponent(a.id)}`;
      link.textContent = a.title;
      link.lang = a.language === "zh" ? "zh-CN" : "en";
      li.append(link);
      if (labelled) {
        const label = document.createElement("span");
        label.className = "lang-label";
        label.dataset.testid = "help-result-lang";
        label.textContent = t(`lang_${a.language}`);
        label.lang = link.lang; // "中文" / "English" is read in its own language
        li.append(" ", label);
      }
      if (a.short_answer) {
        const p = document.createElement("p");
        p.textContent = a.short_answer;
        p.lang = link.lang;
        li.append(p);
      }
      return li;
    });
  }

  async function showList(query) {
    const params = new URLSearchParams({ lang: articleLang(), limit: "50" });
    if (query) params.set("q", query);
    const data = await getJson(`/api/help/articles?${params}`);
    if (query && data.articles.length === 0) {
      showNoResults(query, data);
      return;
    }
    $("list-heading").textContent = query ? t("results", { q: query }) : t("articles");
    const items = articleItems(data.articles, Boolean(query));
    $("article-list").replaceChildren(...items);
    $("list-empty").hidden = items.length > 0;
    show("list-view");
  }

  function showNoResults(query, data) {
    document.title = `${t("noResults", { q: query })} · ${t("title")}`;
    $("none-heading").textContent = t("noResults", { q: query });
    const hint = $("none-suggestion");
    if (data.suggestion) {
      const link = document.createElement("a");
      link.href = `/help?q=${encodeURIComponent(data.suggestion)}`;
      link.textContent = data.suggestion;
      hint.replaceChildren(t("didYouMean"), link, locale === "en" ? "?" : "");
    }
    hint.hidden = !data.suggestion;
    $("none-popular").replaceChildren(...articleItems(data.popular, false));
    $("none-popular-box").hidden = data.popular.length === 0;
    show("none-view");
  }

  async function showMissing() {
    document.title = `${t("missingTitle")} · ${t("title")}`;
    show("missing-view");
    try {
      const params = new URLSearchParams({ lang: articleLang(), limit: "5", order: "popular" });
      const data = await getJson(`/api/help/articles?${params}`);
      $("missing-popular").replaceChildren(...articleItems(data.articles, false));
    } catch (_) {
      // the suggestions are a courtesy; the page already says what happened
    }
  }

  async function showArticle(id) {
    let article;
    try {
      article = await getJson(`/api/help/articles/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err.status === 404) return showMissing();
      throw err;
    }
    document.title = `${article.title} · ${t("title")}`;
    const lang = article.language === "zh" ? "zh-CN" : "en";
    $("article-view").lang = lang;
    $("article-title").textContent = article.title;
    $("article-short").textContent = article.short_answer || "";
    $("article-short").hidden = !article.short_answer;
    $("article-body").innerHTML = article.body_html; // rendered and sanitised by the server
    const date = new Date(article.updated_at).toLocaleDateString(locale);
    $("article-updated").textContent = t("updated", { date });
    $("article-updated").lang = locale;
    $("feedback-status").textContent = "";
    markVote(article.your_vote);
    for (const button of document.querySelectorAll("[data-vote]")) {
      button.onclick = () => vote(article.id, button.dataset.vote === "yes");
    }
    show("article-view");
  }

  function markVote(helpful) {
    for (const button of document.querySelectorAll("[data-vote]")) {
      const mine = helpful !== null && helpful !== undefined && (button.dataset.vote === "yes") === helpful;
      button.setAttribute("aria-pressed", String(mine));
    }
  }

  async function vote(id, helpful) {
    const buttons = document.querySelectorAll("[data-vote]");
    const hadVote = [...buttons].some((b) => b.getAttribute("aria-pressed") === "true");
    buttons.forEach((b) => (b.disabled = true));
    try {
      const res = await fetch(`/api/help/articles/${encodeURIComponent(id)}/feedback`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ helpful }),
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      markVote(helpful);
      $("feedback-status").textContent = hadVote ? t("changed") : t("thanks");
    } catch (_) {
      $("feedback-status").textContent = t("voteFailed");
    } finally {
      // A reader may change their mind: their one vote is replaced, not added to.
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  function route() {
    showError("");
    const match = location.pathname.match(/^\/help\/articles\/([^/]+)$/);
    const work = match
      ? showArticle(decodeURIComponent(match[1]))
      : showList(new URLSearchParams(location.search).get("q") || "");
    work.catch(() => showError(t("loadFailed")));
  }

  function start() {
    applyStrings();
    $("search-input").value = new URLSearchParams(location.search).get("q") || "";
    $("search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const q = $("search-input").value.trim();
      location.href = q ? `/help?q=${encodeURIComponent(q)}` : "/help";
    });
    $("lang-toggle").addEventListener("click", () => {
      locale = locale === "en" ? "zh-CN" : "en";
      localStorage.setItem("omnihub-help-lang", locale);
      applyStrings();
      route();
    });
    for (const button of document.querySelectorAll("[data-chat]")) button.addEventListener("click", openChat);
    loadSite();
    loadWidget();
    route();
  }

  start();
})();
