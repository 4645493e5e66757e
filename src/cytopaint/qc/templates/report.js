document.querySelectorAll("table.sortable").forEach(function(t){
  t.querySelectorAll("th").forEach(function(th,i){th.addEventListener("click",function(){
    var asc=th.getAttribute("aria-sort")!=="ascending";
    t.querySelectorAll("th").forEach(function(h){h.removeAttribute("aria-sort")});
    th.setAttribute("aria-sort",asc?"ascending":"descending");
    var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v;
      var p=parseFloat(x),q=parseFloat(y),nx=isNaN(p),ny=isNaN(q);
      if(x===undefined){x=a.cells[i].textContent;y=b.cells[i].textContent;
        return asc?x.localeCompare(y):y.localeCompare(x)}
      if(nx||ny)return nx-ny;return asc?p-q:q-p});
    rows.forEach(function(r){body.appendChild(r)});});});});
