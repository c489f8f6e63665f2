/** Navigation from page code without a reload: the router in main.ts listens for this event. */
export function go(url: string): void {
  window.dispatchEvent(new CustomEvent("ts:navigate", { detail: url }));
}
