document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-top]");
  if (!link) return;
  event.preventDefault();
  try {
    const doc = window.top.document, anchor = doc.createElement("a");
    anchor.href = link.href;
    doc.body.appendChild(anchor);
    anchor.click();
    anchor.remove();
  } catch (err) {
    window.location.href = link.href;
  }
});
