// Selectors that change the page's currency submit their form at once (the button stays for
// anyone without JavaScript).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select.autosubmit").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
});
