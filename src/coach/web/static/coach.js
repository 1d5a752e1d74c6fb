/* coach web: the interactive parts of the pages, over the JSON API under /v1.
 *
 * Hand-written, no build step, no dependencies. Pages work as server-rendered HTML; this
 * script adds answering without a reload, the streamed grade of a phase, the phase timer,
 * uploads with progress, and a few keyboard shortcuts. Every error shown on a page is the
 * API's own JSON `message`.
 */
(function () {
  "use strict";

  // --- the JSON API --------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status || 0;
      this.code = code || "error";
    }
  }

  const UNREACHABLE =
    "Could not reach the coach server. Check that it is running, then try again; " +
    "nothing you already sent is lost.";

  async function errorFrom(response) {
    let message = "The server answered " + response.status + " " + response.statusText + ".";
    let code = "http_error";
    try {
      const body = await response.json();
      if (body && typeof body.message === "string") {
        message = body.message;
        code = body.code || code;
      }
    } catch (_) {
      /* not JSON: keep the status line */
    }
    return new ApiError(message, response.status, code);
  }

  /** fetch() with the web client's header; throws ApiError with the API's message. */
  async function api(path, options) {
    const opts = options || {};
    const headers = { Accept: opts.accept || "application/json", "X-Coach-Client": "web" };
    const init = { method: opts.method || "GET", headers: headers, credentials: "same-origin" };
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.json);
    } else if (opts.form) {
      init.body = opts.form;
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      throw new ApiError(UNREACHABLE, 0, "network");
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  /** Read a text/event-stream body, calling onEvent(name, data) per event (the SSE rules). */
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let name = "message";
    let data = [];
    const dispatch = function () {
      if (data.length) onEvent(name, data.join("\n"));
      name = "message";
      data = [];
    };
    const line = function (text) {
      if (text === "") return dispatch();
      if (text.charAt(0) === ":") return undefined; // a comment: keep-alive
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.charAt(0) === " ") value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
      return undefined;
    };
    for (;;) {
      const chunk = await reader.read();
      buffer += chunk.done ? decoder.decode() : decoder.decode(chunk.value, { stream: true });
      let match;
      while ((match = /\r\n|\r|\n/.exec(buffer))) {
        // A lone \r at the very end may be the first half of \r\n: wait for more.
        if (match[0] === "\r" && match.index === buffer.length - 1 && !chunk.done) break;
        line(buffer.slice(0, match.index));
        buffer = buffer.slice(match.index + match[0].length);
      }
      if (chunk.done) {
        if (buffer) line(buffer);
        dispatch();
        return;
      }
    }
  }

  // --- small helpers -----------------------------------------------------------------------

  function $(id) {
    return document.getElementById(id);
  }

  function showError(element, message) {
    if (!element) return;
    element.textContent = message;
    element.hidden = false;
  }

  function clearError(element) {
    if (!element) return;
    element.hidden = true;
    element.textContent = "";
  }

  function clock(seconds) {
    const whole = Math.max(0, Math.floor(seconds));
    const s = whole % 60;
    return Math.floor(whole / 60) + ":" + (s < 10 ? "0" : "") + s;
  }

  function bytes(n) {
    if (n < 1024) return n + " bytes";
    if (n < 1024 * 1024) return (n / 1024).toFixed(0) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function sleep(ms) {
    return new Promise(function (resolve) {
      setTimeout(resolve, ms);
    });
  }

  function isTyping(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  /** The readable part of a grade the LLM is still writing (it streams JSON). */
  function readableGrade(raw) {
    const checked = (raw.match(/"met"\s*:\s*(true|false)/g) || []).length;
    const met = (raw.match(/"met"\s*:\s*true/g) || []).length;
    let feedback = "";
    const at = raw.lastIndexOf('"feedback"');
    if (at >= 0) {
      const open = /^"feedback"\s*:\s*"/.exec(raw.slice(at));
      if (open) feedback = partialString(raw.slice(at + open[0].length));
    }
    return { checked: checked, met: met, feedback: feedback };
  }

  const ESCAPES = { n: "\n", t: "\t", r: "", b: "", f: "" };

  /** A JSON string's text up to its closing quote (or the end, while it is being written). */
  function partialString(s) {
    let out = "";
    for (let i = 0; i < s.length; i++) {
      const c = s.charAt(i);
      if (c === '"') break;
      if (c !== "\\") {
        out += c;
        continue;
      }
      const n = s.charAt(i + 1);
      if (!n) break;
      if (n === "u") {
        const hex = s.slice(i + 2, i + 6);
        if (hex.length < 4) break;
        out += String.fromCharCode(parseInt(hex, 16));
        i += 5;
      } else {
        out += Object.prototype.hasOwnProperty.call(ESCAPES, n) ? ESCAPES[n] : n;
        i += 1;
      }
    }
    return out;
  }

  // --- the mock interview ------------------------------------------------------------------

  function initInterview() {
    const root = $("interview");
    if (!root) return;
    const id = root.dataset.id;
    const form = $("composer");
    const answer = $("answer");
    const send = $("send");
    const clarify = $("clarify");
    const next = $("next-phase");
    const finishNow = $("finish-now");
    const live = $("live");
    const error = $("error");
    const donePanel = $("done-panel");
    const label = $("answer-label");
    const hint = $("composer-hint");
    const buttons = [send, clarify, next, finishNow];
    let busy = false;

    const announcer = document.createElement("p");
    announcer.className = "sr-only";
    announcer.setAttribute("role", "status");
    announcer.id = "announce";
    root.appendChild(announcer);

    function meta() {
      return $("iv-meta").dataset;
    }

    function setBusy(on, button) {
      busy = on;
      buttons.forEach(function (b) {
        if (b) b.disabled = on;
      });
      if (button) button.setAttribute("aria-busy", on ? "true" : "false");
    }

    function applyState() {
      const m = meta();
      const finished = m.finished === "true";
      const pushback = m.awaitingPushback === "true";
      clarify.hidden = m.phase !== "requirements" || finished;
      label.textContent = pushback ? "Your reply to the pushback" : "Your answer";
      const nextLabel = m.phase === "deep_dive" ? "Finish: grade the deep dive" : "Next phase";
      const press = "press \u201c" + nextLabel + "\u201d";
      if (pushback) {
        hint.textContent = "The interviewer pushed back: answer the challenge, then " + press + ".";
      } else if (m.phase === "requirements") {
        hint.textContent =
          "Ask clarifying questions first (\u201cAsk as a clarifying question\u201d), then state " +
          "the requirements you will design for.";
      } else {
        hint.textContent =
          "Answer in as many messages as you like, then " + press + " for feedback.";
      }
      next.textContent = m.phase === "deep_dive" ? nextLabel : nextLabel + " \u2192";
      form.hidden = finished;
      donePanel.hidden = !finished;
      if (finishNow) finishNow.hidden = finished;
    }

    /** Swap in the server's current stepper, timer and transcript. */
    async function refresh() {
      let response;
      try {
        response = await fetch("/interviews/" + encodeURIComponent(id) + "/state", {
          credentials: "same-origin",
          headers: { Accept: "text/html" },
        });
      } catch (_) {
        throw new ApiError(UNREACHABLE, 0, "network");
      }
      if (response.redirected && new URL(response.url).pathname === "/signin") {
        window.location.assign(response.url); // signed out meanwhile: sign in, come back
        return;
      }
      if (!response.ok) {
        throw new ApiError("Could not reload the interview; reload the page.", response.status);
      }
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      ["iv-meta", "stepper", "timer", "transcript"].forEach(function (key) {
        const fresh = doc.getElementById(key);
        const current = $(key);
        if (fresh && current) current.replaceWith(document.adoptNode(fresh));
      });
      applyState();
      tick();
    }

    function lastOf(selector) {
      const all = $("transcript").querySelectorAll(selector);
      return all.length ? all[all.length - 1] : null;
    }

    function reveal(element) {
      if (element && element.scrollIntoView) element.scrollIntoView({ block: "nearest" });
    }

    // What the candidate has typed but not sent survives a reload or a closed tab: it is kept
    // in this browser (localStorage), per interview, until it is sent.
    const draftKey = "coach:draft:" + id;
    function keepDraft() {
      try {
        if (answer.value) window.localStorage.setItem(draftKey, answer.value);
        else window.localStorage.removeItem(draftKey);
      } catch (_) {
        /* storage full or off: the draft just is not kept */
      }
    }

    async function post(kind) {
      await api("/v1/interviews/" + encodeURIComponent(id) + "/" + kind, {
        method: "POST",
        json: { text: answer.value },
      });
      answer.value = "";
      keepDraft();
      await refresh();
    }

    async function submit(kind, button) {
      if (busy) return;
      clearError(error);
      setBusy(true, button);
      try {
        await post(kind);
        reveal(form);
      } catch (e) {
        showError(error, e.message);
        if (e.status === 409) refresh().catch(function () {});
      } finally {
        setBusy(false, button);
        answer.focus();
      }
    }

    function streamingBubble(title) {
      const box = document.createElement("div");
      box.className = "msg msg--interviewer streaming";
      const status = document.createElement("p");
      status.className = "streaming__status";
      const spinner = document.createElement("span");
      spinner.className = "spinner";
      spinner.setAttribute("aria-hidden", "true");
      const words = document.createElement("span");
      words.textContent = "Grading " + title + "\u2026";
      status.append(spinner, words);
      const text = document.createElement("p");
      text.className = "streaming__text";
      box.append(status, text);
      return {
        element: box,
        update: function (progress) {
          if (progress.checked) {
            words.textContent =
              "Grading " + title + ": " + progress.checked +
              (progress.checked === 1 ? " criterion" : " criteria") + " checked, " +
              progress.met + " met so far\u2026";
          }
          if (progress.feedback) text.textContent = progress.feedback;
        },
      };
    }

    async function advance() {
      if (busy) return;
      clearError(error);
      setBusy(true, next);
      try {
        if (answer.value.trim()) {
          // Text still in the box is part of this phase: send it before grading.
          await post("answers");
          if (meta().awaitingPushback === "true") {
            announcer.textContent = "The interviewer pushed back. Reply in the answer box.";
            reveal(lastOf(".msg--pushback"));
            return;
          }
        }
        const m = meta();
        const bubble = streamingBubble(m.phaseTitle);
        live.setAttribute("aria-busy", "true"); // read once it settles, not token by token
        live.replaceChildren(bubble.element);
        reveal(live);
        let raw = "";
        let tokens = 0;
        let result = null;
        let failure = null;
        const response = await api("/v1/interviews/" + encodeURIComponent(id) + "/advance/stream", {
          method: "POST",
          json: { phase: m.phase },
          accept: "text/event-stream",
        });
        await readEvents(response, function (name, data) {
          if (name === "token") {
            raw += data;
            tokens += 1;
            bubble.update(readableGrade(raw));
          } else if (name === "grade") {
            result = JSON.parse(data);
          } else if (name === "error") {
            failure = JSON.parse(data);
          }
        });
        root.dataset.streamedTokens = String(tokens);
        if (failure) throw new ApiError(failure.message, failure.status, failure.code);
        if (!result) {
          throw new ApiError(
            "The grading stream stopped early. Press Next phase again: nothing you said is lost.",
          );
        }
        await refresh();
        live.replaceChildren();
        if (result.outcome === "pushback") {
          announcer.textContent = "The interviewer pushed back. Reply in the answer box.";
          reveal(lastOf(".msg--pushback"));
        } else {
          const grade = result.grade;
          const by = grade.source === "llm" ? "the LLM" : "the offline grader";
          const title = m.phaseTitle;
          announcer.textContent =
            title + ": " + grade.score + " out of 4, graded by " + by + ". " + grade.feedback +
            (result.outcome === "finished" ? " The interview is finished; your report is ready." : "");
          reveal(lastOf(".grade-card"));
        }
      } catch (e) {
        live.replaceChildren();
        showError(error, e.message);
        if (e.status === 409) {
          // Another tab or request moved the interview on: show where it really is.
          refresh().catch(function () {});
        }
      } finally {
        live.setAttribute("aria-busy", "false");
        setBusy(false, next);
        if (meta().finished === "true") $("see-report").focus();
        else answer.focus();
      }
    }

    async function finish() {
      if (busy) return;
      const ok = window.confirm(
        "End the interview now? Every phase not graded yet is graded as it stands.",
      );
      if (!ok) return;
      clearError(error);
      setBusy(true, finishNow);
      // With an LLM each phase left is a call, so the work runs as a job that says how far
      // it has got; the page shows that and opens the report when it is ready.
      const box = $("finish-progress");
      const status = $("finish-status");
      box.hidden = false;
      status.textContent = "Grading every phase not graded yet\u2026";
      try {
        const response = await api("/v1/interviews/" + encodeURIComponent(id) + "/finish", {
          method: "POST",
          json: { wait: false },
        });
        if (response.status === 202) {
          const body = await response.json();
          await pollGrading(body.grading_id, status, {
            failed: "Your answers are saved; press \u201cFinish now\u201d again to retry.",
            slow:
              "Your answers are saved: reload this page later and \u201cSee your report\u201d " +
              "appears once it is done.",
          });
        }
        status.textContent = "Done: opening the report\u2026";
        window.location.assign("/interviews/" + encodeURIComponent(id) + "/report");
      } catch (e) {
        box.hidden = true;
        showError(error, e.message);
        setBusy(false, finishNow);
      }
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submit("answers", send);
    });
    clarify.addEventListener("click", function () {
      submit("clarify", clarify);
    });
    next.addEventListener("click", advance);
    if (finishNow) finishNow.addEventListener("click", finish);
    answer.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        submit("answers", send);
      }
    });

    // The countdown: the server says when the phase started and what time it is there,
    // so a wrong clock in the browser does not matter. It never stops the candidate.
    const firstSeen = new WeakMap();
    function tick() {
      const el = $("timer");
      if (!el || !el.dataset.started) return;
      if (!firstSeen.has(el)) firstSeen.set(el, Date.now());
      const elapsed =
        (Date.parse(el.dataset.now) - Date.parse(el.dataset.started)) / 1000 +
        (Date.now() - firstSeen.get(el)) / 1000;
      const budget = Number(el.dataset.budget);
      const left = budget - elapsed;
      const state = left < 0 ? "over" : left <= budget * 0.2 ? "warn" : "ok";
      el.classList.toggle("timer--warn", state === "warn");
      el.classList.toggle("timer--over", state === "over");
      el.querySelector(".timer__value").textContent = left < 0 ? "+" + clock(-left) : clock(left);
      el.querySelector(".timer__suffix").textContent = left < 0 ? "over" : "left";
      if (el.dataset.state && el.dataset.state !== state) {
        const status = el.querySelector(".timer__status");
        if (status) {
          status.textContent =
            state === "over"
              ? "This phase is over its time budget. Carry on; you are never cut off."
              : "Less than a fifth of this phase's time budget is left.";
        }
      }
      el.dataset.state = state;
    }
    setInterval(tick, 1000);
    tick();
    applyState();

    try {
      const draft = window.localStorage.getItem(draftKey);
      if (draft && !answer.value) answer.value = draft;
    } catch (_) {
      /* no storage: nothing to restore */
    }
    answer.addEventListener("input", keepDraft);
    // Back to this page from another: the browser may show it as it was when left (its
    // back-forward cache), phases ago. Fetch the interview as it is now.
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) refresh().catch(function (e) { showError(error, e.message); });
    });
    // Ready to type, and on a phone the answer box is in view rather than the transcript's top.
    if (meta().finished !== "true") answer.focus();
  }

  // --- upload a whole answer -----------------------------------------------------------------

  // Follows a grading job until it is done. `hints.failed` says what to do when it fails,
  // `hints.slow` what to do when the page stops waiting (the job itself goes on).
  async function pollGrading(gradingId, statusElement, hints) {
    hints = hints || {};
    const labels = {
      pending: "Queued: waiting for a grader\u2026",
      running: "Grading phase by phase\u2026",
    };
    const deadline = Date.now() + 20 * 60 * 1000; // a slow local model may take minutes
    while (Date.now() < deadline) {
      const response = await api("/v1/gradings/" + encodeURIComponent(gradingId));
      const body = await response.json();
      if (body.status === "done") return body;
      if (body.status === "failed") {
        throw new ApiError(
          (body.error || "Grading failed.") +
            " " +
            (hints.failed || "Your answer is stored; open it to grade it again."),
        );
      }
      const bar = statusElement.parentElement.querySelector("progress");
      if (body.progress) {
        // A job that has started says how far it has got: "Grading phase 3 of 6: API design".
        statusElement.textContent =
          body.progress.step + " (step " + Math.min(body.progress.done + 1, body.progress.total) +
          " of " + body.progress.total + ")\u2026";
        if (bar) {
          bar.max = body.progress.total;
          bar.value = body.progress.done;
        }
      } else {
        statusElement.textContent = labels[body.status] || body.status;
      }
      await sleep(body.progress ? 500 : 1000);
    }
    throw new ApiError(
      "This is taking very long, so the page has stopped waiting; the grading goes on in the " +
        "background. " +
        (hints.slow || "Reload this page later to see the report."),
    );
  }

  function initUpload() {
    const form = $("upload-form");
    if (!form) return;
    const text = $("upload-text");
    const fileInput = $("upload-file");
    const chosen = $("upload-chosen");
    const chosenName = $("upload-chosen-name");
    const dropzone = $("dropzone");
    const progress = $("upload-progress");
    const status = $("upload-status");
    const error = $("error");
    const submit = $("upload-submit");
    const question = $("upload-question");
    let file = null;

    function choose(f) {
      file = f || null;
      chosen.hidden = !file;
      chosenName.textContent = file ? "File: " + file.name + " (" + bytes(file.size) + ")" : "";
      if (!file) fileInput.value = "";
    }

    fileInput.addEventListener("change", function () {
      choose(fileInput.files && fileInput.files[0]);
      clearError(error);
    });
    $("upload-clear").addEventListener("click", function () {
      choose(null);
      fileInput.focus();
    });
    ["dragenter", "dragover"].forEach(function (type) {
      dropzone.addEventListener(type, function (event) {
        event.preventDefault();
        dropzone.classList.add("is-over");
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      dropzone.addEventListener(type, function () {
        dropzone.classList.remove("is-over");
      });
    });
    dropzone.addEventListener("drop", function (event) {
      event.preventDefault();
      const dropped = event.dataTransfer && event.dataTransfer.files[0];
      if (dropped) {
        choose(dropped);
        clearError(error);
      } else if (event.dataTransfer) {
        text.value += event.dataTransfer.getData("text/plain");
      }
    });

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      clearError(error);
      submit.disabled = true;
      submit.setAttribute("aria-busy", "true");
      progress.hidden = false;
      status.textContent = file
        ? "Uploading " + file.name + " and grading it phase by phase\u2026"
        : "Grading your answer phase by phase\u2026";
      try {
        let response;
        if (file) {
          const data = new FormData();
          data.append("file", file);
          if (question.value) data.append("question_id", question.value);
          response = await api("/v1/gradings", { method: "POST", form: data });
        } else {
          response = await api("/v1/gradings", {
            method: "POST",
            json: { text: text.value, question_id: question.value || null },
          });
        }
        const body = await response.json();
        if (response.status === 202) {
          status.textContent = "Accepted: a long answer is graded as a background job\u2026";
          await pollGrading(body.grading_id, status, {
            slow: "Its page, /gradings/" + body.grading_id + ", shows the report once it is done.",
          });
        }
        status.textContent = "Done: opening the report\u2026";
        window.location.assign("/gradings/" + encodeURIComponent(body.grading_id));
      } catch (e) {
        progress.hidden = true;
        showError(error, e.message);
        submit.disabled = false;
        submit.setAttribute("aria-busy", "false");
      }
    });
  }

  function initGrading() {
    const box = $("grading");
    if (!box) return;
    const id = box.dataset.id;
    const retry = $("retry");
    if (retry) {
      retry.addEventListener("click", async function () {
        retry.disabled = true;
        try {
          await api("/v1/gradings/" + encodeURIComponent(id) + "/retry", { method: "POST" });
          window.location.reload();
        } catch (e) {
          showError($("error"), e.message);
          retry.disabled = false;
        }
      });
      return;
    }
    pollGrading(id, $("grading-status")).then(
      function () {
        window.location.reload();
      },
      function (e) {
        showError($("error"), e.message);
      },
    );
  }

  // --- keyboard shortcuts ------------------------------------------------------------------

  function initStudy() {
    document.addEventListener("keydown", function (event) {
      if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
      if (isTyping(event.target)) return;
      const link = document.querySelector('[data-key="' + event.key + '"]');
      if (link) {
        event.preventDefault();
        link.click();
      }
    });
  }

  function initHome() {
    const name = $("candidate");
    if (!name) return;
    // Enter in the name field would start the first question's interview: don't.
    name.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        const first = document.querySelector(".question-card button");
        if (first) first.focus();
      }
    });
  }

  const pages = {
    interview: initInterview,
    upload: initUpload,
    grading: initGrading,
    study: initStudy,
    home: initHome,
  };
  const start = pages[document.body.dataset.page];
  if (start) start();
})();
