// Sealpost download page: /s/{id}. Plain JavaScript, no framework, no inline code (strict CSP).
// Every user-visible string comes from /assets/i18n/<lang>.json.
(function () {
  'use strict';

  var LANGS = ['de', 'fr', 'it', 'en'];
  var LANG_KEY = 'sealpost.lang';
  // The server adds ?v=<hash> to this script's URL; the translation files use the same version.
  var VERSION = (function () {
    var src = document.currentScript && document.currentScript.src;
    var match = src && /[?&]v=([A-Za-z0-9_-]+)/.exec(src);
    return match ? match[1] : '';
  })();

  var S = {
    id: null,
    lang: 'en',
    locale: 'en',
    dict: {},
    dicts: {},
    info: null,
    view: null,
    busy: false,
    formError: null, // [[key, params], ...]
    ssBusy: false,
    ssMessage: null, // {kind: 'ok'|'info'|'warn', parts: [[key, params], ...]}
    ssWaitUntil: 0,
    ssHidden: false,
    token: null,
    tokenExpiresAt: 0,
    documents: [],
    archive: null,
    docsMessage: null,
    problem: null,
    otpAbort: null,
    // The reply form: busy while sending; error [[key, params], ...]; progress [key, params];
    // the receipt the API answered.
    reply: { busy: false, error: null, errorField: null, progress: null, receipt: null, pending: null }
  };

  var REPLY_MAX_FILES = 5;
  var REPLY_MAX_FILE = 20 * 1024 * 1024;
  var REPLY_MAX_TOTAL = 50 * 1024 * 1024;
  var REPLY_MAX_CHARS = 4000;

  function $(id) { return document.getElementById(id); }

  // ---- translation ------------------------------------------------------------------------

  function t(key, params) {
    return pattern(key).replace(/\{(\w+)\}/g, function (all, name) {
      var value = param(params, name);
      return value === undefined ? all : value;
    });
  }

  function pattern(key) {
    return String(Object.prototype.hasOwnProperty.call(S.dict, key) ? S.dict[key] : key);
  }

  function param(params, name) {
    if (!params || params[name] === undefined) return undefined;
    return params[name] instanceof Date ? formatTime(params[name]) : String(params[name]);
  }

  function pluralKey(base, n) {
    var form = 'other';
    try { form = new Intl.PluralRules(S.locale).select(n); } catch (e) { form = n === 1 ? 'one' : 'other'; }
    return base + (form === 'one' ? '_one' : '_other');
  }

  // A message made of sentences, each `[key, params]`, translated when shown.
  function parts(list) {
    return list.map(function (p) {
      return t(p[0], p[1]);
    }).join(' ');
  }

  // Values the patient compares with a letter, an SMS or a call: a browser's page translator
  // must leave them as they are (a masked number, the practice, a reference, a filename).
  var VERBATIM = { phone: true, practice: true, reference: true, name: true };

  // Shows the sentences `list` (as `parts`) in `el`, each VERBATIM value in its own
  // <span translate="no">. Only touches the DOM when the text changes, like setText.
  function setParts(el, list) {
    if (el.textContent === parts(list)) return;
    el.textContent = '';
    list.forEach(function (p, i) {
      if (i > 0) el.appendChild(document.createTextNode(' '));
      pattern(p[0]).split(/(\{\w+\})/).forEach(function (piece) {
        var name = /^\{(\w+)\}$/.exec(piece);
        var value = name ? param(p[1], name[1]) : undefined;
        if (value === undefined) {
          if (piece) el.appendChild(document.createTextNode(piece));
        } else if (VERBATIM[name[1]]) {
          var span = document.createElement('span');
          span.setAttribute('translate', 'no');
          span.textContent = value;
          el.appendChild(span);
        } else {
          el.appendChild(document.createTextNode(value));
        }
      });
    });
  }

  function waitText() {
    var left = Math.ceil((S.ssWaitUntil - Date.now()) / 1000);
    if (left <= 0) return '';
    return t('ss_wait', { duration: formatDuration(left), time: formatTime(new Date(S.ssWaitUntil)) });
  }

  // A phone number never breaks across lines.
  function keepTogether(text) {
    return String(text).replace(/ /g, '\u00a0');
  }

  // Only touches the DOM when the text changes, so live regions do not repeat themselves.
  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  function storedLang() {
    try {
      var l = window.localStorage.getItem(LANG_KEY);
      return LANGS.indexOf(l) >= 0 ? l : null;
    } catch (e) { return null; }
  }

  function browserLangs() {
    var list = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ''];
    return Array.prototype.slice.call(list).map(function (l) { return String(l); });
  }

  function browserLang() {
    var list = browserLangs();
    for (var i = 0; i < list.length; i++) {
      var primary = list[i].toLowerCase().split('-')[0];
      if (LANGS.indexOf(primary) >= 0) return primary;
    }
    return null;
  }

  // The browser's own regional variant when it speaks this language (de-CH, fr-CH…), for dates.
  function localeFor(lang) {
    var list = browserLangs();
    for (var i = 0; i < list.length; i++) {
      if (list[i].toLowerCase().split('-')[0] === lang) return list[i];
    }
    return lang;
  }

  function loadDict(lang) {
    if (S.dicts[lang]) return S.dicts[lang];
    var url = '/assets/i18n/' + lang + '.json' + (VERSION ? '?v=' + VERSION : '');
    var promise = fetch(url, { credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) throw new Error('i18n ' + r.status);
      return r.json();
    });
    S.dicts[lang] = promise;
    promise.catch(function () { delete S.dicts[lang]; });
    return promise;
  }

  async function setLang(lang) {
    try {
      S.dict = await loadDict(lang);
    } catch (e) {
      if (lang !== 'en') return setLang('en');
      return;
    }
    S.lang = lang;
    S.locale = localeFor(lang);
    render();
  }

  // ---- formatting -------------------------------------------------------------------------

  function formatDateTime(date) {
    return new Intl.DateTimeFormat(S.locale, {
      year: 'numeric', month: 'long', day: 'numeric', hour: '2-digit', minute: '2-digit'
    }).format(date);
  }

  function formatTime(date) {
    var sameDay = date.toDateString() === new Date().toDateString();
    var options = sameDay ? { hour: '2-digit', minute: '2-digit' }
      : { weekday: 'long', hour: '2-digit', minute: '2-digit' };
    return new Intl.DateTimeFormat(S.locale, options).format(date);
  }

  function formatDuration(seconds) {
    var minutes = Math.max(1, Math.ceil(seconds / 60));
    if (minutes < 90) return t(pluralKey('minutes', minutes), { n: minutes });
    var hours = Math.round(minutes / 60);
    return t(pluralKey('hours', hours), { n: hours });
  }

  function formatSize(bytes) {
    var units = [['byte', 1], ['kilobyte', 1e3], ['megabyte', 1e6], ['gigabyte', 1e9]];
    var unit = units[0];
    for (var i = 0; i < units.length; i++) if (bytes >= units[i][1]) unit = units[i];
    var value = bytes / unit[1];
    try {
      return new Intl.NumberFormat(S.locale, {
        style: 'unit', unit: unit[0], unitDisplay: unit[0] === 'byte' ? 'long' : 'short', maximumFractionDigits: value < 10 && unit[1] > 1 ? 1 : 0
      }).format(value);
    } catch (e) {
      return Math.round(value * 10) / 10 + ' ' + ({ byte: 'B', kilobyte: 'kB', megabyte: 'MB', gigabyte: 'GB' })[unit[0]];
    }
  }

  function typeLabel(contentType, filename) {
    var ct = String(contentType || '').toLowerCase().split(';')[0].trim();
    var ext = String(filename || '').toLowerCase().split('.').pop();
    if (ct === 'application/pdf' || ext === 'pdf') return t('type_pdf');
    if (ct.indexOf('image/') === 0) return t('type_image');
    if (ct.indexOf('text/') === 0) return t('type_text');
    if (/word|opendocument\.text/.test(ct) || ext === 'docx' || ext === 'doc') return t('type_word');
    if (/excel|spreadsheet|csv/.test(ct) || ext === 'xlsx' || ext === 'xls') return t('type_sheet');
    if (/zip/.test(ct) || ext === 'zip') return t('type_zip');
    return t('type_other');
  }

  // ---- the API ----------------------------------------------------------------------------

  async function api(method, path, options) {
    options = options || {};
    var headers = { Accept: 'application/json' };
    if (options.body) headers['Content-Type'] = 'application/json';
    if (options.token) headers.Authorization = 'Bearer ' + options.token;
    var response;
    try {
      response = await fetch('/v1/public/shares/' + encodeURIComponent(S.id) + path, {
        method: method,
        headers: headers,
        body: options.body ? JSON.stringify(options.body) : undefined,
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer'
      });
    } catch (e) {
      return { ok: false, status: 0, error: { code: 'network' } };
    }
    var data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (response.ok) return { ok: true, status: response.status, data: data || {} };
    var retryAfter = parseInt(response.headers.get('Retry-After') || '', 10);
    return {
      ok: false,
      status: response.status,
      error: (data && data.error) || { code: response.status >= 500 ? 'internal' : 'unknown' },
      retryAfter: isFinite(retryAfter) ? retryAfter : null
    };
  }

  // ---- views ------------------------------------------------------------------------------

  var VIEWS = { loading: 'view-loading', code: 'view-code', docs: 'view-docs', problem: 'view-problem' };

  function show(view, focusEl) {
    S.view = view;
    Object.keys(VIEWS).forEach(function (name) { $(VIEWS[name]).hidden = name !== view; });
    $('share-card').hidden = !(view === 'code' || view === 'docs');
    render();
    if (focusEl) {
      focusEl.focus();
      if (focusEl.select && focusEl.type === 'text') focusEl.select();
    }
  }

  function render() {
    document.documentElement.lang = S.lang;
    var statics = document.querySelectorAll('[data-i18n]');
    for (var i = 0; i < statics.length; i++) setText(statics[i], t(statics[i].getAttribute('data-i18n')));
    var buttons = document.querySelectorAll('button.lang');
    for (var j = 0; j < buttons.length; j++) {
      buttons[j].setAttribute('aria-pressed', String(buttons[j].getAttribute('data-lang') === S.lang));
    }
    if (S.info) renderShareCard();
    if (S.view === 'code') renderCode();
    if (S.view === 'docs') renderDocs();
    if (S.view === 'problem') renderProblem();
    document.title = titleText();
  }

  function titleText() {
    if (S.view === 'problem' && S.problem) return t(S.problem + '_title') + ' – ' + t('brand');
    if (S.info && S.info.practice_name) return t('title') + ' – ' + S.info.practice_name;
    return t('title') + ' – ' + t('brand');
  }

  function renderShareCard() {
    setParts($('share-title'), [['share_title', { practice: S.info.practice_name }]]);
    $('share-reference').textContent = S.info.reference;
    $('share-expires').textContent = S.info.expires_at ? formatDateTime(new Date(S.info.expires_at)) : '';
  }

  function method() {
    var m = S.info && S.info.auth_method;
    return m === 'date_of_birth' || m === 'insurance_number' || m === 'manual' ? m : 'sms';
  }

  function activeInput() {
    var m = method();
    return m === 'date_of_birth' ? $('dob') : m === 'insurance_number' ? $('insurance') : $('code');
  }

  function selfServiceShown() {
    return method() === 'sms' && !S.ssHidden && S.info.self_service && S.info.self_service.available;
  }

  function renderCode() {
    var m = method();
    var heading = { sms: 'heading_code', manual: 'heading_code', date_of_birth: 'heading_dob', insurance_number: 'heading_insurance' }[m];
    $('code-heading').textContent = t(heading);
    var intro;
    if (m === 'sms') intro = S.info.masked_phone ? ['intro_sms', { phone: keepTogether(S.info.masked_phone) }] : ['intro_sms_nophone'];
    else intro = [{ manual: 'intro_manual', date_of_birth: 'intro_dob', insurance_number: 'intro_insurance' }[m]];
    setParts($('code-intro'), [intro]);
    $('field-code').hidden = !(m === 'sms' || m === 'manual');
    $('field-dob').hidden = m !== 'date_of_birth';
    $('field-insurance').hidden = m !== 'insurance_number';

    var input = activeInput();
    var error = S.formError ? parts(S.formError) : '';
    setText($('form-error'), error);
    if (error) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');

    var submit = $('submit');
    submit.textContent = S.busy ? t('checking') : t('submit');
    submit.setAttribute('aria-disabled', String(S.busy));

    var ss = selfServiceShown();
    $('self-service').hidden = !ss;
    if (ss) {
      var wait = waitText();
      setText($('ss-wait'), wait);
      $('ss-wait').hidden = !wait || !!S.ssMessage;
      var button = $('ss-button');
      button.textContent = S.ssBusy ? t('ss_sending') : t('ss_button');
      button.setAttribute('aria-disabled', String(S.ssBusy));
      var msg = $('ss-message');
      setParts(msg, S.ssMessage ? S.ssMessage.parts : []);
      msg.className = 'alert' + (S.ssMessage ? ' alert-' + S.ssMessage.kind : '');
    }
    var help = $('code-help');
    help.hidden = ss;
    help.textContent = t(m === 'sms' ? 'help_sms' : m === 'manual' ? 'help_manual' : 'help_other');
  }

  function renderDocs() {
    var practice = S.info ? S.info.practice_name : '';
    var n = S.documents.length;
    setParts($('docs-intro'), [[pluralKey('docs_intro', n), { n: n, practice: practice }]]);
    var list = $('docs-list');
    if (list.getAttribute('data-token') !== S.token) {
      list.textContent = '';
      S.documents.forEach(function (doc) {
        var item = $('doc-item').content.firstElementChild.cloneNode(true);
        item.setAttribute('data-doc', doc.id);
        item.querySelector('.doc-name').textContent = doc.filename;
        var button = item.querySelector('.doc-download');
        button.addEventListener('click', function () {
          download('/documents/' + encodeURIComponent(doc.id), doc.filename, button);
        });
        list.appendChild(item);
      });
      list.setAttribute('data-token', S.token || '');
    }
    S.documents.forEach(function (doc, i) {
      var item = list.children[i];
      if (!item) return;
      item.querySelector('.doc-meta').textContent = typeLabel(doc.content_type, doc.filename) + ' · ' + formatSize(doc.size);
      item.querySelector('.doc-download-label').textContent = t('download');
      item.querySelector('.doc-download-name').textContent = ' ' + doc.filename;
    });
    var hasArchive = !!S.archive;
    $('download-all').hidden = !hasArchive;
    $('archive-meta').hidden = !hasArchive;
    if (hasArchive) $('archive-meta').textContent = t('archive_meta', { size: formatSize(S.archive.size) });
    var msg = $('docs-message');
    setParts(msg, S.docsMessage ? [[S.docsMessage.key, S.docsMessage.params]] : []);
    msg.className = 'alert' + (S.docsMessage ? ' alert-' + (S.docsMessage.kind || 'ok') : '');
    $('docs-note').textContent = S.info && S.info.expires_at
      ? t('docs_note', { date: formatDateTime(new Date(S.info.expires_at)) }) : '';
    renderReply();
  }

  function renderReply() {
    var section = $('reply');
    section.hidden = !(S.info && S.info.allow_reply);
    if (section.hidden) return;
    var R = S.reply;
    setParts($('reply-heading'), [['reply_heading', { practice: S.info.practice_name }]]);
    $('reply-form').hidden = !!R.receipt;
    $('reply-receipt').hidden = !R.receipt;
    setParts($('reply-error'), R.error || []);
    ['reply-message', 'reply-files'].forEach(function (id) {
      if (R.errorField === id) $(id).setAttribute('aria-invalid', 'true'); else $(id).removeAttribute('aria-invalid');
    });
    setParts($('reply-progress'), R.progress ? [R.progress] : []);
    var send = $('reply-send');
    setText(send, R.busy ? t('reply_busy') : t('reply_send'));
    send.setAttribute('aria-disabled', String(R.busy));
    if (!R.receipt) return;
    var at = R.receipt.submitted_at ? formatDateTime(new Date(R.receipt.submitted_at)) : '';
    setParts($('reply-receipt-time'), [['reply_receipt_time', { practice: S.info.practice_name, time: at }]]);
    var message = $('reply-receipt-message');
    message.hidden = !R.receipt.message;
    setText(message, R.receipt.message || '');
    var list = $('reply-receipt-files');
    list.textContent = '';
    (R.receipt.files || []).forEach(function (f) {
      var key = f.status === 'accepted' ? 'reply_file_sent'
        : f.reason === 'wrong_type' ? 'reply_file_wrong_type' : 'reply_file_not_uploaded';
      var item = document.createElement('li');
      setParts(item, [[key, { name: f.filename }]]);
      list.appendChild(item);
    });
  }

  function renderProblem() {
    var kind = S.problem || 'error';
    $('problem-heading').textContent = t(kind + '_title');
    $('problem-text').textContent = t(kind + '_text');
    var ref = $('problem-ref');
    ref.hidden = !(kind === 'locked' && S.info);
    if (!ref.hidden) setParts(ref, [['locked_ref', { practice: S.info.practice_name, reference: S.info.reference }]]);
    $('problem-retry').hidden = kind !== 'error';
  }

  function showProblem(kind) {
    stopWebOtp();
    S.problem = kind;
    S.token = null;
    show('problem', $('problem-heading'));
  }

  // Errors every patient call can meet; answers true when it showed a problem page.
  function handleCommonError(result) {
    var code = result.error && result.error.code;
    if (code === 'not_found' || code === 'expired' || code === 'revoked') { showProblem(code); return true; }
    if (code === 'locked') {
      if (S.info) S.info.state = 'locked';
      showProblem('locked');
      return true;
    }
    return false;
  }

  // ---- code step --------------------------------------------------------------------------

  function showCode(focus) {
    show('code', focus ? activeInput() : null);
    startWebOtp();
  }

  function setFormError(list, focus) {
    S.formError = list;
    render();
    if (focus !== false) {
      var input = activeInput();
      input.focus();
      if (input.type === 'text') input.select();
    }
  }

  async function onSubmit(event) {
    event.preventDefault();
    if (S.busy) return;
    var m = method();
    var input = activeInput();
    var value = input.value.trim();
    var body = {};
    if (m === 'date_of_birth') {
      if (!value) return setFormError([['err_empty_dob']]);
      body.date_of_birth = value;
    } else if (m === 'insurance_number') {
      if (!value) return setFormError([['err_empty_insurance']]);
      body.insurance_number = value;
    } else {
      if (!value) return setFormError([['err_empty_code']]);
      body.code = value;
    }
    S.busy = true;
    render();
    var result = await api('POST', '/verify', { body: body });
    S.busy = false;
    if (result.ok) {
      stopWebOtp();
      S.token = result.data.access_token;
      S.tokenExpiresAt = Date.now() + Math.max(30, (result.data.expires_in || 900) - 20) * 1000;
      S.documents = result.data.documents || [];
      S.archive = result.data.archive || null;
      S.formError = null;
      S.docsMessage = null;
      ['code', 'dob', 'insurance'].forEach(function (id) { $(id).value = ''; });
      show('docs', $('docs-heading'));
      return;
    }
    if (handleCommonError(result)) return;
    var code = result.error.code;
    var suffix = m === 'date_of_birth' ? 'dob' : m === 'insurance_number' ? 'insurance' : 'code';
    if (code === 'wrong_code') {
      var left = result.error.attempts_left;
      var list = [['wrong_' + suffix]];
      if (typeof left === 'number') {
        S.info.attempts_left = left;
        list.push([pluralKey('attempts', left), { n: left }]);
      }
      setFormError(list);
    } else if (code === 'invalid_request') {
      setFormError([['err_format_' + suffix]]);
    } else if (code === 'expired_code') {
      setFormError([[selfServiceShown() ? 'expired_code_self' : 'expired_code_practice']]);
    } else {
      setFormError([['error_text']]);
    }
  }

  async function refreshInfo() {
    var result = await api('GET', '');
    if (result.ok) S.info = result.data;
    return result;
  }

  async function onSelfService() {
    if (S.ssBusy) return;
    S.ssBusy = true;
    S.ssMessage = null;
    render();
    var result = await api('POST', '/code');
    S.ssBusy = false;
    if (result.ok) {
      var phone = keepTogether(result.data.masked_phone || S.info.masked_phone || '');
      await refreshInfo();
      var ss = S.info.self_service || {};
      S.ssWaitUntil = ss.retry_after ? Date.now() + ss.retry_after * 1000 : 0;
      S.ssMessage = { kind: 'ok', parts: [['ss_sent', { phone: phone }]] };
      S.formError = null;
      render();
      var input = activeInput();
      input.value = '';
      input.focus();
      return;
    }
    if (handleCommonError(result)) return;
    var code = result.error.code;
    if (code === 'rate_limited') {
      await refreshInfo();
      if (S.view !== 'code') return;
      var self = S.info.self_service || {};
      if (self.available === false) {
        S.ssMessage = { kind: 'warn', parts: [['ss_exhausted']] };
      } else {
        var wait = self.retry_after || result.retryAfter || 60;
        S.ssWaitUntil = Date.now() + wait * 1000;
        S.ssMessage = {
          kind: 'info',
          parts: [['ss_too_early'], ['ss_wait_at', { time: new Date(S.ssWaitUntil) }]]
        };
      }
    } else if (code === 'forbidden') {
      S.ssHidden = true;
    } else {
      S.ssMessage = { kind: 'warn', parts: [['error_text']] };
    }
    render();
  }

  // Android Chrome reads the code from the SMS's last line (@host #code) when the patient agrees.
  function startWebOtp() {
    if (method() !== 'sms' || S.otpAbort || !('OTPCredential' in window) || !window.AbortController) return;
    S.otpAbort = new AbortController();
    navigator.credentials.get({ otp: { transport: ['sms'] }, signal: S.otpAbort.signal }).then(function (otp) {
      S.otpAbort = null;
      if (otp && otp.code && S.view === 'code') {
        $('code').value = otp.code;
        $('submit').click();
      }
    }).catch(function () { S.otpAbort = null; });
  }

  function stopWebOtp() {
    if (S.otpAbort) { S.otpAbort.abort(); S.otpAbort = null; }
  }

  // ---- the reply --------------------------------------------------------------------------

  // The type the API takes for a file: what the browser says, else its extension.
  function replyType(file) {
    var type = String(file.type || '').toLowerCase();
    if (type === 'application/pdf' || type === 'image/jpeg' || type === 'image/png') return type;
    var ext = String(file.name || '').toLowerCase().split('.').pop();
    if (ext === 'pdf') return 'application/pdf';
    if (ext === 'jpg' || ext === 'jpeg') return 'image/jpeg';
    if (ext === 'png') return 'image/png';
    return null;
  }

  // The upload URL takes exactly the bytes whose SHA-256 the reply declares.
  async function sha256Hex(file) {
    var digest = new Uint8Array(await crypto.subtle.digest('SHA-256', await file.arrayBuffer()));
    return Array.prototype.map.call(digest, function (b) { return (b < 16 ? '0' : '') + b.toString(16); }).join('');
  }

  // A problem with the reply: its sentences, and the field it is about (marked invalid and
  // given the focus), if any.
  function replyProblem(list, field) {
    S.reply.busy = false;
    S.reply.progress = null;
    S.reply.error = list;
    S.reply.errorField = field ? field.id : null;
    render();
    if (field) field.focus();
  }

  // What is wrong with the form before anything is sent, as [sentences, field], or null.
  function replyFormError(message, files) {
    if (!message && !files.length) return [[['reply_err_empty']], $('reply-message')];
    if (Array.from(message).length > REPLY_MAX_CHARS) return [[['reply_err_long']], $('reply-message')];
    if (files.length > REPLY_MAX_FILES) return [[['reply_err_count']], $('reply-files')];
    var total = 0;
    for (var i = 0; i < files.length; i++) {
      if (!replyType(files[i])) return [[['reply_err_type', { name: files[i].name }]], $('reply-files')];
      if (!files[i].size || files[i].size > REPLY_MAX_FILE) return [[['reply_err_size', { name: files[i].name }]], $('reply-files')];
      total += files[i].size;
    }
    if (total > REPLY_MAX_TOTAL) return [[['reply_err_total']], $('reply-files')];
    return null;
  }

  // The message as the API takes it: no control characters but line breaks and tabs, no
  // text-direction overrides (pasted text can carry them unseen).
  function cleanMessage(text) {
    return text.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/g, '').trim();
  }

  // What the form holds, to know whether a reply already started is still this one.
  function replySignature(message, files) {
    return JSON.stringify([message, files.map(function (f) { return [f.name, f.size, f.lastModified]; })]);
  }

  // One PUT to the file's upload URL, tried twice: the URL is checked when the PUT starts.
  async function putFile(upload, file) {
    for (var attempt = 0; attempt < 2; attempt++) {
      try {
        var response = await fetch(upload.upload_url, {
          method: 'PUT', headers: upload.upload_headers || {}, body: file,
          cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer'
        });
        if (response.ok) return true;
        if (response.status < 500) return false;
      } catch (e) { /* the network: once more */ }
    }
    return false;
  }

  // Start the reply, upload its files (all at once: each upload URL is checked when its PUT
  // starts, and lives minutes), then submit: the receipt says what the practice got. A file
  // whose upload fails is named in the receipt; the rest still goes. A reply started but not
  // submitted (the access ran out, the network dropped) is submitted again, not started anew,
  // while the form still holds it.
  async function onReply(event) {
    event.preventDefault();
    if (S.reply.busy) return;
    if (!S.token || Date.now() > S.tokenExpiresAt) return sessionExpired();
    var message = cleanMessage($('reply-message').value);
    var files = Array.prototype.slice.call($('reply-files').files || []);
    var invalid = replyFormError(message, files);
    if (invalid) return replyProblem(invalid[0], invalid[1]);
    var signature = replySignature(message, files);
    var pending = S.reply.pending && S.reply.pending.signature === signature ? S.reply.pending : null;
    S.reply.busy = true;
    S.reply.error = null;
    S.reply.errorField = null;
    if (!pending) {
      S.reply.progress = ['reply_preparing'];
      render();
      var declared = [];
      try {
        for (var i = 0; i < files.length; i++) {
          declared.push({ filename: files[i].name, content_type: replyType(files[i]), size: files[i].size, sha256: await sha256Hex(files[i]) });
        }
      } catch (e) {
        return replyProblem([['reply_err_failed']]);
      }
      var started = await api('POST', '/replies', { token: S.token, body: { message: message || undefined, files: declared } });
      if (!started.ok) return replyFailed(started, []);
      var uploads = started.data.files || [];
      S.reply.progress = files.length === 1
        ? ['reply_uploading', { name: files[0].name, i: 1, n: 1 }]
        : ['reply_uploading_all', { n: files.length }];
      render();
      var done = await Promise.all(files.map(function (file, j) {
        return uploads[j] ? putFile(uploads[j], file) : Promise.resolve(false);
      }));
      var failed = files.filter(function (file, j) { return !done[j]; }).map(function (file) { return file.name; });
      pending = { id: started.data.id, signature: signature, failed: failed };
      S.reply.pending = pending;
    }
    S.reply.progress = ['reply_submitting'];
    render();
    var submitted = await api('POST', '/replies/' + encodeURIComponent(pending.id) + '/submit', { token: S.token });
    if (!submitted.ok) return replyFailed(submitted, pending.failed);
    S.reply = { busy: false, error: null, errorField: null, progress: null, receipt: submitted.data, pending: null };
    $('reply-message').value = '';
    $('reply-files').value = '';
    render();
    $('reply-receipt-heading').focus();
  }

  // `failed`: the files whose upload did not go through.
  function replyFailed(result, failed) {
    S.reply.busy = false;
    S.reply.progress = null;
    if (result.status === 401) return sessionExpired();
    if (handleCommonError(result)) return;
    var error = result.error || {};
    if (error.code === 'rate_limited') {
      var at = new Date(Date.now() + (result.retryAfter || 3600) * 1000);
      return replyProblem([['reply_err_limit', { time: at }]]);
    }
    if (error.code === 'forbidden') return replyProblem([['reply_err_closed']]);
    if (error.code === 'invalid_request' && error.field === 'message') return replyProblem([['reply_err_message']], $('reply-message'));
    if (error.code === 'invalid_request' && error.field === 'files') {
      // Nothing went through: say why, and start afresh next time.
      S.reply.pending = null;
      if (failed.length) return replyProblem([['reply_err_upload', { name: failed[0] }]], $('reply-files'));
      return replyProblem([['reply_err_none']], $('reply-files'));
    }
    replyProblem([['reply_err_failed']]);
  }

  function replyAgain() {
    S.reply = { busy: false, error: null, errorField: null, progress: null, receipt: null, pending: null };
    render();
    $('reply-message').focus();
  }

  // ---- downloads --------------------------------------------------------------------------

  function sessionExpired() {
    S.token = null;
    S.documents = [];
    S.archive = null;
    var m = method();
    S.formError = [[m === 'date_of_birth' ? 'session_expired_dob' : m === 'insurance_number' ? 'session_expired_insurance' : 'session_expired']];
    showCode(true);
  }

  // Each click asks for a fresh short-lived URL, so a URL that ran out is never reused.
  async function download(path, filename, button) {
    if (button.getAttribute('aria-disabled') === 'true') return;
    if (!S.token || Date.now() > S.tokenExpiresAt) return sessionExpired();
    button.setAttribute('aria-disabled', 'true');
    S.docsMessage = { key: 'preparing', kind: 'info' };
    render();
    var result = await api('GET', path, { token: S.token });
    button.setAttribute('aria-disabled', 'false');
    if (result.ok && result.data.url) {
      var link = document.createElement('a');
      link.href = result.data.url;
      link.setAttribute('download', filename || '');
      link.rel = 'noopener';
      link.hidden = true;
      document.body.appendChild(link);
      link.click();
      link.remove();
      S.docsMessage = { key: 'download_started', params: { name: filename || '' } };
      render();
      return;
    }
    if (result.status === 401) return sessionExpired();
    if (handleCommonError(result)) return;
    S.docsMessage = { key: 'download_failed', kind: 'warn' };
    render();
  }

  // ---- start ------------------------------------------------------------------------------

  async function start() {
    S.info = null;
    S.problem = null;
    show('loading');
    var match = /^\/s\/([A-Za-z0-9_-]{1,128})\/?$/.exec(location.pathname);
    S.id = match ? match[1] : null;
    var chosen = storedLang() || browserLang();
    var htmlLang = document.documentElement.lang;
    var first = chosen || (LANGS.indexOf(htmlLang) >= 0 ? htmlLang : 'en');
    loadDict(first).catch(function () {});
    var result = S.id ? await api('GET', '') : null;
    var shareLang = result && result.ok && LANGS.indexOf(result.data.language) >= 0 ? result.data.language : null;
    await setLang(chosen || shareLang || first);
    if (!S.id) return showProblem('not_found');
    if (result.ok) {
      S.info = result.data;
      var ss = S.info.self_service;
      S.ssWaitUntil = ss && ss.retry_after ? Date.now() + ss.retry_after * 1000 : 0;
      if (S.info.state === 'locked') return showProblem('locked');
      return showCode(false);
    }
    if (handleCommonError(result)) return;
    showProblem('error');
  }

  function init() {
    $('code-form').addEventListener('submit', onSubmit);
    $('ss-button').addEventListener('click', function () {
      if ($('ss-button').getAttribute('aria-disabled') !== 'true') onSelfService();
    });
    $('download-all').addEventListener('click', function () {
      download('/archive', S.info ? S.info.reference + '.zip' : '', $('download-all'));
    });
    $('problem-retry').addEventListener('click', function () { start(); });
    $('reply-form').addEventListener('submit', onReply);
    $('reply-again').addEventListener('click', replyAgain);
    var buttons = document.querySelectorAll('button.lang');
    Array.prototype.forEach.call(buttons, function (button) {
      button.addEventListener('click', function () {
        var lang = button.getAttribute('data-lang');
        try { window.localStorage.setItem(LANG_KEY, lang); } catch (e) { /* private mode */ }
        setLang(lang);
      });
    });
    // Keep the waiting time current while the page stays open.
    window.setInterval(function () { if (S.view === 'code' && S.ssWaitUntil) render(); }, 20000);
    start();
  }

  init();
})();
