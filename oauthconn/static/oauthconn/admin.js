// oauthconn admin: the copy button, the slug derived from the name, the wizard's provider
// fields shown for the chosen source (the preset parameter named after the preset), the
// help of the chosen client authentication, and the key fields shown for a signed JWT.
// Works without it: the server validates everything.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.querySelector(button.dataset.copy);
      input.select();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done);
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });

  var name = document.getElementById("id_basics-name");
  var slug = document.getElementById("id_basics-slug");
  if (name && slug) {
    var edited = slug.value !== "";
    slug.addEventListener("input", function () { edited = slug.value !== ""; });
    name.addEventListener("input", function () {
      if (!edited) {
        slug.value = name.value.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
          .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 50);
      }
    });
  }

  var rows = {
    preset: [".field-preset", ".field-preset_parameter"],
    issuer: [".field-issuer"],
    resource: [".field-resource_url"],
    existing: [".field-existing_provider"],
    custom: []
  };
  var sources = document.querySelectorAll("input[name='basics-source']");
  var show = function () {
    var chosen = document.querySelector("input[name='basics-source']:checked");
    Object.keys(rows).forEach(function (key) {
      rows[key].forEach(function (selector) {
        var row = document.querySelector(selector);
        if (row) { row.hidden = !chosen || chosen.value !== key; }
      });
    });
  };
  // The preset's parameter: its label and help follow the chosen preset, and it is
  // prefilled with the site's value (PRESET_PARAMETERS) or the preset's default.
  var parameter = document.getElementById("id_basics-preset_parameter");
  var preset = document.getElementById("id_basics-preset");
  var prefilled = "";  // the value this script put there, replaced when the preset changes
  var describe = function () {
    var texts = JSON.parse(parameter.dataset.presets || "{}");
    var text = texts[preset.value];
    var row = parameter.closest(".form-row");
    var label = row.querySelector("label");
    var help = row.querySelector(".help");
    if (!label.dataset.generic) {
      label.dataset.generic = label.textContent;
      help.dataset.generic = help.textContent;
    }
    label.textContent = text ? text.label + ":" : label.dataset.generic;
    help.textContent = text && text.help ? text.help : help.dataset.generic;
    if (text && (parameter.value === "" || parameter.value === prefilled)) {
      parameter.value = prefilled = text.value;
    }
    if (preset.value && !text) { row.hidden = true; }  // this preset takes no parameter
  };
  var showAll = function () { show(); if (parameter && preset) { describe(); } };
  sources.forEach(function (radio) { radio.addEventListener("change", showAll); });
  if (preset && parameter) { preset.addEventListener("change", showAll); }
  if (sources.length) { showAll(); }

  // Client authentication: only the help line of the chosen method is shown.
  document.querySelectorAll("select[name$='client_auth_method']").forEach(function (select) {
    var row = select.closest(".form-row") || document;
    var follow = function () {
      row.querySelectorAll("[data-auth-help]").forEach(function (line) {
        line.hidden = line.dataset.authHelp !== select.value;
      });
    };
    select.addEventListener("change", follow);
    follow();
  });

  // The client step: a signed JWT (private_key_jwt) needs a key type, not a secret.
  var method = document.getElementById("id_client-client_auth_method");
  var showMethod = function () {
    var signed = method.value === "private_key_jwt";
    [".field-key_type", ".field-jwks_url"].forEach(function (selector) {
      var row = document.querySelector(selector);
      if (row) { row.hidden = !signed; }
    });
    var secret = document.querySelector(".field-client_secret");
    if (secret) { secret.hidden = signed; }
  };
  if (method) {
    method.addEventListener("change", showMethod);
    showMethod();
  }
});
