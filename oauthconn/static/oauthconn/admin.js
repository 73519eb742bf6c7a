// oauthconn admin: the copy button, the slug derived from the name, the wizard's provider
// fields shown for the chosen source, and the key fields shown for a signed JWT. Works without
// it: the server validates everything.
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
  sources.forEach(function (radio) { radio.addEventListener("change", show); });
  if (sources.length) { show(); }

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
