// Ory Elements' <Recovery> as a platform's SPA uses it, unchanged.
import { createRoot } from "react-dom/client";
import { Configuration, FrontendApi } from "@ory/client-fetch";
import { Recovery } from "@ory/elements-react/theme";
import "@ory/elements-react/theme/styles.css";
import { config, fail } from "./config.js";

const sdk = window.SDK_URL;
const frontend = new FrontendApi(new Configuration({ basePath: sdk, credentials: "include" }));
const id = new URLSearchParams(window.location.search).get("flow");
if (!id) {
  window.location.href = `${sdk}/self-service/recovery/browser`;
} else {
  frontend
    .getRecoveryFlow({ id })
    .then((flow) =>
      createRoot(document.getElementById("root")).render(<Recovery flow={flow} config={config(sdk)} />),
    )
    .catch(fail);
}
