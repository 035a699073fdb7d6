(() => {
  const names = ["colors-bg", "colors-bg-subtle", "colors-bg-muted", "colors-fg", "colors-fg-muted",
    "colors-border", "colors-border-emphasized", "colors-blue-fg", "colors-color-palette-focus-ring",
    "radii-l2", "radii-l3", "fonts-body"];
  let parentRoot;
  try { parentRoot = window.parent !== window && window.parent.document.documentElement; } catch (err) {}
  const mine = document.documentElement;
  const sync = () => {
    const theme = getComputedStyle(parentRoot);
    const dark = parentRoot.classList.contains("dark") || parentRoot.dataset.theme === "dark"
      || theme.colorScheme === "dark";
    mine.dataset.theme = dark ? "dark" : "light";
    for (const name of names) {
      const value = theme.getPropertyValue("--chakra-" + name).trim();
      if (value) mine.style.setProperty("--chakra-" + name, value);
      else mine.style.removeProperty("--chakra-" + name);
    }
  };
  if (parentRoot) {
    sync();
    const watched = { attributes: true, attributeFilter: ["class", "style", "data-theme"] };
    new MutationObserver(sync).observe(parentRoot, watched);
  } else if (window.matchMedia("(prefers-color-scheme: dark)").matches) {
    mine.dataset.theme = "dark";
  }
})();
