// Tillit's one script. The pages work without it; it adds the session-timeout warning and
// confirmations on forms marked data-confirm. No texts here: they are in the page.
(function () {
  'use strict';
  var idle = Number(document.body.getAttribute('data-idle') || 0);
  var box = document.getElementById('timeout-warning');
  if (idle > 0 && box) {
    var warnBefore = Math.min(120, Math.floor(idle / 3));
    var warnTimer, endTimer;
    var arm = function () {
      clearTimeout(warnTimer);
      clearTimeout(endTimer);
      box.hidden = true;
      warnTimer = setTimeout(function () {
        box.hidden = false;
        var stay = document.getElementById('timeout-stay');
        if (stay) stay.focus();
      }, (idle - warnBefore) * 1000);
      endTimer = setTimeout(function () {
        window.location.assign('/login?expired=1');
      }, idle * 1000);
    };
    var stay = document.getElementById('timeout-stay');
    if (stay) {
      stay.addEventListener('click', function () {
        fetch('/session/keepalive', { credentials: 'same-origin' }).then(function (r) {
          if (r.status === 204) arm(); else window.location.assign('/login?expired=1');
        });
      });
    }
    arm();
  }
  document.querySelectorAll('form[data-confirm]').forEach(function (f) {
    f.addEventListener('submit', function (e) {
      if (!window.confirm(f.getAttribute('data-confirm'))) e.preventDefault();
    });
  });
})();
