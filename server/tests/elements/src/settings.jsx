// Ory Elements' <Settings> as a platform's SPA uses it, unchanged; the page
// also says whether the browser still has a session (`whoami`).
import { createRoot } from "react-dom/client";
import { Configuration, FrontendApi } from "@ory/client-fetch";
import { Settings } from "@ory/elements-react/theme";
import "@ory/elements-react/theme/styles.css";
import { config, fail } from "./config.js";

const sdk = window.SDK_URL;
const frontend = new FrontendApi(new Configuration({ basePath: sdk, credentials: "include" }));
const id = new URLSearchParams(window.location.search).get("flow");

window.whoami = () =>
  fetch(`${sdk}/sessions/whoami`, { credentials: "include" }).then((r) => r.status);

frontend
  .getSettingsFlow({ id })
  .then((flow) =>
    createRoot(document.getElementById("root")).render(<Settings flow={flow} config={config(sdk)} />),
  )
  .catch(fail);
