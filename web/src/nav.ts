/** Navigation from page code without a reload (the router in main.ts listens for the event), and
the clean-ups a page leaves behind it (a socket, an object URL), run when the next page opens. */
export function go(url: string): void {
  window.dispatchEvent(new CustomEvent("ts:navigate", { detail: url }));
}

const cleanups: (() => void)[] = [];

/** Run `fn` when the user leaves the current page. */
export function onLeave(fn: () => void): void {
  cleanups.push(fn);
}

/** The router calls this before drawing the next page. */
export function leavePage(): void {
  for (const fn of cleanups.splice(0)) fn();
}
