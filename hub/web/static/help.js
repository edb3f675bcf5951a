/*
 * The public help center: published articles, a search that uses the bot's ranking, and
 * "was this helpful?" votes. Reads the public JSON API (/api/help/*); article bodies arrive as
 * HTML the server rendered from Markdown and sanitised (nh3), everything else is set as text.
 */
(function () {
  "use strict";

  const STRINGS = {
    en: {
      title: "Help center", searchLabel: "Search the help center", searchPlaceholder: "Ask a question…",
      search: "Search", articles: "Articles", results: "Results for “{q}”", noArticles: "No articles found.",
      helpful: "Was this article helpful?", yes: "Yes", no: "No", thanks: "Thank you for your feedback.",
      voteFailed: "Your vote could not be sent; please try again later.", updated: "Last updated {date}",
      notFound: "This article does not exist or is no longer published.", loadFailed: "The help center could not be loaded.",
      other: "中文",
    },
    "zh-CN": {
      title: "帮助中心", searchLabel: "搜索帮助中心", searchPlaceholder: "输入您的问题…",
      search: "搜索", articles: "文章", results: "“{q}”的搜索结果", noArticles: "没有找到文章。",
      helpful: "这篇文章对您有帮助吗？", yes: "有帮助", no: "没有帮助", thanks: "感谢您的反馈。",
      voteFailed: "反馈未能发送，请稍后再试。", updated: "最后更新：{date}",
      notFound: "该文章不存在或已下线。", loadFailed: "帮助中心加载失败。",
      other: "English",
    },
  };

  const $ = (id) => document.getElementById(id);
  let locale = pickLocale();

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
    $("lang-toggle").textContent = t("other");
  }

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

  async function showList(query) {
    $("article-view").hidden = true;
    const params = new URLSearchParams({ lang: articleLang(), limit: "50" });
    if (query) params.set("q", query);
    const data = await getJson(`/api/help/articles?${params}`);
    $("list-heading").textContent = query ? t("results", { q: query }) : t("articles");
    const items = data.articles.map((a) => {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = `/help/articles/${encodeURIComponent(a.id)}`;
      link.textContent = a.title;
      li.append(link);
      if (a.short_answer) {
        const p = document.createElement("p");
        p.textContent = a.short_answer;
        li.append(p);
      }
      return li;
    });
    $("article-list").replaceChildren(...items);
    $("list-empty").hidden = items.length > 0;
    $("list-view").hidden = false;
  }

  async function showArticle(id) {
    $("list-view").hidden = true;
    let article;
    try {
      article = await getJson(`/api/help/articles/${encodeURIComponent(id)}`);
    } catch (err) {
      showError(err.status === 404 ? t("notFound") : t("loadFailed"));
      return;
    }
    document.title = `${article.title} · ${t("title")}`;
    $("article-title").textContent = article.title;
    $("article-short").textContent = article.short_answer || "";
    $("article-short").hidden = !article.short_answer;
    $("article-body").innerHTML = article.body_html; // rendered and sanitised by the server
    const date = new Date(article.updated_at).toLocaleDateString(locale);
    $("article-updated").textContent = t("updated", { date });
    for (const button of document.querySelectorAll("[data-vote]")) {
      button.onclick = () => vote(article.id, button.dataset.vote === "yes");
    }
    $("article-view").hidden = false;
  }

  async function vote(id, helpful) {
    const buttons = document.querySelectorAll("[data-vote]");
    buttons.forEach((b) => (b.disabled = true));
    try {
      const res = await fetch(`/api/help/articles/${encodeURIComponent(id)}/feedback`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ helpful }),
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      $("feedback-status").textContent = t("thanks");
    } catch (_) {
      $("feedback-status").textContent = t("voteFailed");
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
    route();
  }

  start();
})();
