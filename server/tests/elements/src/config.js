// Ory Elements' configuration for a UI served beside Reclaim: the SDK
// points at Reclaim (window.SDK_URL, written into the page by the test),
// the UI URLs at this origin's pages.
export function config(sdk) {
  const here = window.location.origin;
  return {
    sdk: { url: sdk, options: { credentials: "include" } },
    project: {
      name: "Reclaim",
      default_redirect_url: `${here}/`,
      error_ui_url: `${here}/error.html`,
      login_ui_url: `${here}/login.html`,
      registration_ui_url: `${here}/registration.html`,
      recovery_ui_url: `${here}/recovery.html`,
      settings_ui_url: `${here}/settings.html`,
      verification_ui_url: `${here}/verification.html`,
      recovery_enabled: true,
      registration_enabled: false,
      verification_enabled: false,
    },
  };
}

// Shows what went wrong where the test can read it, rather than looping.
export function fail(error) {
  document.body.dataset.error = String(error && (error.message || error));
}
