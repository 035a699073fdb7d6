(() => {
  const dialog = document.getElementById("player");
  if (!dialog) return;
  const video = dialog.querySelector("video"), caption = dialog.querySelector(".caption span");
  document.addEventListener("click", (event) => {
    const poster = event.target.closest("button.poster[data-video]");
    if (!poster) return;
    video.src = poster.dataset.video;
    caption.textContent = poster.dataset.caption || "";
    dialog.showModal();
    video.play().catch(() => {});
  });
  dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
  dialog.addEventListener("close", () => { video.pause(); video.removeAttribute("src"); video.load(); });
})();
