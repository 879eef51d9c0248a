/** Checking a webhook delivery from the service (Standard Webhooks signatures). */

import { Webhook } from "standardwebhooks";
import { InvalidWebhook } from "./errors.js";

/**
 * Return the decoded payload of a genuine delivery; throw `InvalidWebhook` when the
 * signature, the timestamp (±5 minutes) or the body does not check out. `body` is the raw
 * request body, exactly as received; `secret` the endpoint's `whsec_…` secret.
 */
export function verifyWebhook(secret: string, body: string, headers: Record<string, string> | Headers): unknown {
  const lowered: Record<string, string> = {};
  if (typeof Headers !== "undefined" && headers instanceof Headers) {
    headers.forEach((value, name) => {
      lowered[name.toLowerCase()] = value;
    });
  } else {
    for (const [name, value] of Object.entries(headers)) lowered[name.toLowerCase()] = String(value);
  }
  try {
    return new Webhook(secret).verify(body, lowered);
  } catch (error) {
    throw new InvalidWebhook(`webhook rejected: ${(error as Error)?.message ?? error}`, { cause: error });
  }
}
