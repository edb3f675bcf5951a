/*
 * What the agent pages (inbox, knowledge-base editor) share: JSON calls to the hub with the
 * session cookie and CSRF header, the hub's error shape, and a small DOM builder that only
 * ever sets text through textContent. Loaded before each page's own script.
 */
(function () {
  "use strict";

  class ApiError extends Error {
    constructor(status, code, detail) {
      super(detail || code);
      this.status = status;
      this.code = code;
    }
  }

  /**
   * `session` is read on every call: {csrf(): string|null, signedIn(): bool, lost(): void}.
   * A 401 outside /api/auth/ while signed in means the session ended elsewhere.
   */
  function createApi(session) {
    return async function api(method, path, body) {
      const headers = { Accept: "application/json" };
      // A FormData body (file upload) sets its own multipart Content-Type with the boundary.
      const form = typeof FormData !== "undefined" && body instanceof FormData;
      if (method !== "GET") {
        if (!form) headers["Content-Type"] = "application/json";
        const csrf = session.csrf();
        if (csrf) headers["X-CSRF-Token"] = csrf;
      }
      const res = await fetch(path, {
        method,
        headers,
        body: method === "GET" ? undefined : form ? body : JSON.stringify(body || {}),
        credentials: "same-origin",
        cache: "no-store",
      });
      let data = null;
      if (res.status !== 204) {
        try {
          data = await res.json();
        } catch (_) {
          data = null;
        }
      }
      if (!res.ok) {
        const err = (data && data.error) || {};
        if (res.status === 401 && session.signedIn() && !path.startsWith("/api/auth/")) {
          session.lost();
        }
        const detail = typeof err.detail === "string" ? err.detail : res.statusText;
        throw new ApiError(res.status, err.code || "http_" + res.status, detail);
      }
      return data;
    };
  }

  /** el("button", {class, text, onclick, ...attributes}, ...children) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "onclick") node.addEventListener("click", value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  /**
   * Submits the sign-in form both pages share (#login-email, #login-password,
   * #login-submit). Resolves with the session ({agent, csrf_token}), or with null after
   * calling `failed(key)` with "invalidLogin" or "loginFailed".
   */
  async function signIn(api, failed) {
    const button = document.getElementById("login-submit");
    const password = document.getElementById("login-password");
    button.disabled = true;
    try {
      const data = await api("POST", "/api/auth/login", {
        email: document.getElementById("login-email").value.trim(),
        password: password.value,
      });
      password.value = "";
      return data;
    } catch (err) {
      failed(err.status === 401 ? "invalidLogin" : "loginFailed");
      return null;
    } finally {
      button.disabled = false;
    }
  }

  /** Ends the session on the hub, then locally (`lost`) even if the hub is unreachable. */
  async function signOut(api, lost) {
    try {
      await api("POST", "/api/auth/logout", {});
    } catch (_) {
      /* signing out locally is what was asked for */
    }
    lost();
  }

  window.OmnihubAgent = { ApiError, createApi, el, signIn, signOut };
})();
