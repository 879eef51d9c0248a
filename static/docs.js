// The API reference page: Swagger UI over the service's own OpenAPI document.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("reference");
  window.SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    tryItOutEnabled: false,
    persistAuthorization: false,
  });
});
